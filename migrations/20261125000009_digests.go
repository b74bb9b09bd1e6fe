package migrations

// Digests: one row per doctor and digest period, inserted by the digest job
// in the transaction that makes the digest notification, so a period is
// summed up once however often the job runs.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: digestsUp("TIMESTAMPTZ"), sqlite: digestsUp("TIMESTAMP")}),
		steps(dialectSQL{pg: digestsDown, sqlite: digestsDown}))
}

var digestsDown = []string{
	`DROP TABLE digests`,
}

func digestsUp(ts string) []string {
	return []string{
		`CREATE TABLE digests (
	doctor_id       TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	period_end      ` + ts + ` NOT NULL,
	items           INTEGER NOT NULL,
	notification_id TEXT NOT NULL DEFAULT '',
	created_at      ` + ts + ` NOT NULL,
	PRIMARY KEY (doctor_id, period_end)
)`,
	}
}
