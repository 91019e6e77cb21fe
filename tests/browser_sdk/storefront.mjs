// The storefront's bundle entry: the unmodified SDKs from npm, exposed to the page's inline
// script. esbuild bundles it into one IIFE at test time, so the page loads nothing from a CDN.
import { AnalyticsBrowser } from '@segment/analytics-next'
// RudderStack's "bundled" build carries its plugins, so none is fetched from its CDN.
import { RudderAnalytics } from '@rudderstack/analytics-js/bundled'

window.AnalyticsBrowser = AnalyticsBrowser
window.RudderAnalytics = RudderAnalytics
