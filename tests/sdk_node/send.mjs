// Sends events with the official @segment/analytics-node SDK, unmodified, to a lakepulse
// collector: node send.mjs <collector base URL> <write key>
import { Analytics } from "@segment/analytics-node";

const [host, writeKey] = process.argv.slice(2);
const analytics = new Analytics({ writeKey, host, maxEventsInBatch: 10, flushInterval: 200 });
analytics.on("error", (err) => {
  console.error("delivery failed", err);
  process.exitCode = 1;
});
analytics.identify({ userId: "node-user", traits: { email: "node@example.com", plan: "pro" } });
analytics.track({
  userId: "node-user",
  event: "Order Completed",
  properties: { order_id: "node-o1", revenue: 30.5, currency: "EUR" },
});
analytics.page({ anonymousId: "node-anon", name: "Home", properties: { path: "/", url: "https://s.example/?email=x@y.z" } });
await analytics.closeAndFlush({ timeout: 10000 });
