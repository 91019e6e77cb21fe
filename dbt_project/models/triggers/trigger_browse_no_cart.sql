-- Kind `browse_no_cart`: at least `min_minutes` of activity in a session (its first to its
-- latest event) with no `Product Added` so far. Fires while the session may still go on (a
-- discount offered to a visitor still browsing); one occurrence per session, for sessions
-- active in the last day.

{{ session_trigger(
    kind='browse_no_cart',
    params={'min_minutes': 'double'},
    sessions=ref('int_sessions'),
    clocks=ref('int_session_clocks'),
    occurred_at='sessions.session_start_at + ' ~ minutes_interval('definitions.min_minutes'),
    payload_columns=['user_id', 'session_id', 'landing_page', 'page_views', 'duration_s'],
    condition="sessions.first_product_added_at is null
        and sessions.duration_s >= definitions.min_minutes * 60",
) }}
