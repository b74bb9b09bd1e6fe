// How the doctor portal (or an integrator) calls the API with the
// generated types: openapi-fetch checks every path, parameter, body and
// response against schema.d.ts, so an API change that breaks this code
// fails `npm run check` (scripts/check-clients runs it in CI).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type NotificationSummary = components["schemas"]["NotificationSummary"];

// The doctor portal: a doctor's bearer token.
export function portalClient(baseUrl: string, doctorToken: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${doctorToken}` } });
}

// Unread critical results, newest first, following the cursor.
export async function unreadCriticalResults(api: ReturnType<typeof portalClient>): Promise<NotificationSummary[]> {
  const found: NotificationSummary[] = [];
  let cursor: string | undefined;
  do {
    const { data, error } = await api.GET("/v1/notifications", {
      params: { query: { unread: true, category: "critical_results", limit: 100, ...(cursor ? { cursor } : {}) } },
    });
    if (error) throw new Error(`list notifications: ${error.status} ${error.detail ?? ""}`);
    found.push(...(data.items ?? []));
    cursor = data.next_cursor;
  } while (cursor);
  return found;
}

// Closes the loop on a critical result.
export async function acknowledge(api: ReturnType<typeof portalClient>, id: string, note: string) {
  const { data, error } = await api.POST("/v1/notifications/{id}/acknowledge", {
    params: { path: { id } },
    body: { note },
  });
  if (error) throw new Error(`acknowledge ${id}: ${error.status} ${error.title ?? ""}`);
  return data.acknowledged_at;
}

// An integrator without Kafka posts a checkup result with an API key
// holding scope events:write; the body is the contract's own type.
export async function postCheckupResult(baseUrl: string, apiKey: string) {
  const api = createClient<paths>({ baseUrl, headers: { "X-API-Key": apiKey } });
  const event: components["schemas"]["InboundCheckupEvent"] = {
    event_type: "result_available",
    checkup_id: "CHK-2026-0001",
    patient: { ref: "HN-65-004821" },
    referring_doctors: [{ external_user_id: "um-usr-7f3a9c" }],
    occurred_at: new Date().toISOString(),
    result: { version: 1, status: "final", critical: false, tests: [] },
  };
  const { data, error } = await api.POST("/v1/events/checkup-events", {
    params: { header: { "Idempotency-Key": "CHK-2026-0001-v1" } },
    body: event,
  });
  if (error) throw new Error(`ingest: ${error.status} ${error.detail ?? ""}`);
  return data.id;
}
