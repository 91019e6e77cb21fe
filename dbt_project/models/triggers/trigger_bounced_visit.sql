-- Kind `bounced_visit`: a session of one page view shorter than `max_seconds`, known to be
-- over (`session_timeout_minutes` passed without another event, at the tenant's latest
-- event). One occurrence per session, for sessions that ended in the last day.

{%- set timeout = minutes_interval(var('session_timeout_minutes')) %}

{{ session_trigger(
    kind='bounced_visit',
    params={'max_seconds': 'double'},
    sessions=ref('int_sessions'),
    clocks=ref('int_session_clocks'),
    occurred_at='sessions.session_end_at + ' ~ timeout,
    payload_columns=['user_id', 'session_id', 'landing_page', 'channel', 'duration_s'],
    condition="sessions.page_views = 1
        and sessions.duration_s < definitions.max_seconds
        and sessions.session_end_at <= clocks.judged_at - " ~ timeout,
) }}
