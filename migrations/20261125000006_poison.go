package migrations

// The poison table: every message the router poisoned, drained from the
// poison topic, one row per (original topic, handler, message id) with how
// often it was poisoned, and what operators did with it (pending, replayed
// or discarded, by whom and why).
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: poisonUp("TIMESTAMPTZ", "JSONB"), sqlite: poisonUp("TIMESTAMP", "TEXT")}),
		steps(dialectSQL{pg: poisonDown, sqlite: poisonDown}))
}

var poisonDown = []string{
	`DROP TABLE poison_messages`,
}

func poisonUp(ts, jsonType string) []string {
	return []string{
		`CREATE TABLE poison_messages (
	id               TEXT PRIMARY KEY,
	message_id       TEXT NOT NULL,
	topic            TEXT NOT NULL,
	handler          TEXT NOT NULL,
	class            TEXT NOT NULL,
	reason           TEXT NOT NULL,
	attempts         INTEGER NOT NULL DEFAULT 0,
	times_poisoned   INTEGER NOT NULL DEFAULT 1,
	payload          TEXT NOT NULL,
	payload_encoding TEXT NOT NULL DEFAULT 'utf8',
	metadata         ` + jsonType + ` NOT NULL,
	first_seen_at    ` + ts + ` NOT NULL,
	last_seen_at     ` + ts + ` NOT NULL,
	state            TEXT NOT NULL DEFAULT 'pending',
	state_reason     TEXT NOT NULL DEFAULT '',
	state_changed_by TEXT NOT NULL DEFAULT '',
	state_changed_at ` + ts + `,
	UNIQUE (topic, handler, message_id)
)`,
		`CREATE INDEX poison_messages_state ON poison_messages (state, topic, first_seen_at)`,
	}
}
