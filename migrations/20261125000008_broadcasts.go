package migrations

// Broadcasts: an announcement to an audience of doctors, fanned out by the
// worker in chunks; the checkpoint (the last doctor id done) and the counts
// live on the row, so a restarted worker continues where it stopped. The
// index on notifications.source_event_id serves the broadcast's progress.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: broadcastsUp("TIMESTAMPTZ", "JSONB"), sqlite: broadcastsUp("TIMESTAMP", "TEXT")}),
		steps(dialectSQL{pg: broadcastsDown, sqlite: broadcastsDown}))
}

var broadcastsDown = []string{
	`DROP INDEX notifications_source_event`,
	`DROP TABLE broadcasts`,
}

func broadcastsUp(ts, jsonType string) []string {
	return []string{
		`CREATE TABLE broadcasts (
	id             TEXT PRIMARY KEY,
	category       TEXT NOT NULL,
	title          TEXT NOT NULL,
	body           TEXT NOT NULL,
	audience_kind  TEXT NOT NULL,
	audience_value ` + jsonType + ` NOT NULL,
	state          TEXT NOT NULL DEFAULT 'pending',
	checkpoint     TEXT NOT NULL DEFAULT '',
	targeted       INTEGER NOT NULL DEFAULT 0,
	created        INTEGER NOT NULL DEFAULT 0,
	api_key_id     TEXT NOT NULL DEFAULT '',
	created_at     ` + ts + ` NOT NULL,
	started_at     ` + ts + `,
	completed_at   ` + ts + `
)`,
		`CREATE INDEX broadcasts_state ON broadcasts (state, created_at)`,
		`CREATE INDEX notifications_source_event ON notifications (source_event_id)`,
	}
}
