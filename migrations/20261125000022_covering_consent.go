package migrations

// Covering needs consent. A cover is pending until the covering doctor
// accepts it (or an operator approves it); who decided and when is kept.
// Existing covers become pending: none of them was consented to, and a
// cover sends the covering doctor another doctor's patient data, so it
// must not keep doing so on the strength of one side's say-so. They take
// effect again as soon as the covering doctor accepts.
func init() {
	up := func(ts string) []string {
		return []string{
			`ALTER TABLE delegations ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'`,
			`ALTER TABLE delegations ADD COLUMN decided_at ` + ts,
			`ALTER TABLE delegations ADD COLUMN decided_by TEXT NOT NULL DEFAULT ''`,
			`CREATE INDEX delegations_covering ON delegations (covering_doctor_id, ends_at)`,
		}
	}
	down := []string{
		`DROP INDEX delegations_covering`,
		`ALTER TABLE delegations DROP COLUMN decided_by`,
		`ALTER TABLE delegations DROP COLUMN decided_at`,
		`ALTER TABLE delegations DROP COLUMN status`,
	}
	Migrations.MustRegister(steps(dialectSQL{pg: up("TIMESTAMPTZ"), sqlite: up("TIMESTAMP")}), steps(dialectSQL{pg: down, sqlite: down}))
}
