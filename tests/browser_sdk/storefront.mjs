// The storefront's bundle entry: the unmodified SDKs from npm, exposed to the page's inline
// script. esbuild bundles it into one IIFE at test time, so the page loads nothing from a CDN.
import { AnalyticsBrowser } from '@segment/analytics-next'

window.AnalyticsBrowser = AnalyticsBrowser
