package migrations

// Idempotency keys of the integrators' API calls: the SHA-256 of each key
// (never the key itself), scoped to the API key that sent it, with the hash
// of the request it was first used for and the response that request got,
// kept until it expires (24 h). The primary key is what stops two
// concurrent requests with the same key from both doing the work. And the
// API key that registered each webhook endpoint: an integrator sees and
// manages only its own endpoints.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: idempotencyUp("TIMESTAMPTZ"), sqlite: idempotencyUp("TIMESTAMP")}),
		steps(dialectSQL{pg: idempotencyDown, sqlite: append([]string{`DROP INDEX webhook_endpoints_api_key`}, idempotencyDown...)}))
}

var idempotencyDown = []string{
	`ALTER TABLE webhook_endpoints DROP COLUMN api_key_id`,
	`DROP TABLE idempotency_keys`,
}

func idempotencyUp(ts string) []string {
	return []string{
		`CREATE TABLE idempotency_keys (
	api_key_id      TEXT NOT NULL,
	key_hash        TEXT NOT NULL,
	operation       TEXT NOT NULL,
	request_hash    TEXT NOT NULL,
	response_status INTEGER NOT NULL DEFAULT 0,
	response_body   TEXT NOT NULL DEFAULT '',
	created_at      ` + ts + ` NOT NULL,
	expires_at      ` + ts + ` NOT NULL,
	PRIMARY KEY (api_key_id, key_hash)
)`,
		`CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at)`,
		`ALTER TABLE webhook_endpoints ADD COLUMN api_key_id TEXT`,
		`CREATE INDEX webhook_endpoints_api_key ON webhook_endpoints (api_key_id, id)`,
	}
}
