package migrations

// The inbox: one row per message a consumer has processed. The primary key
// is what turns a redelivery into a no-op.
func init() {
	Migrations.MustRegister(
		steps(dialectSQL{
			pg: []string{`CREATE TABLE inbox (
	consumer     TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, message_id)
)`, `CREATE INDEX inbox_processed_at ON inbox (processed_at)`},
			sqlite: []string{`CREATE TABLE inbox (
	consumer     TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	processed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (consumer, message_id)
) WITHOUT ROWID`, `CREATE INDEX inbox_processed_at ON inbox (processed_at)`},
		}),
		steps(dialectSQL{
			pg:     []string{`DROP TABLE inbox`},
			sqlite: []string{`DROP TABLE inbox`},
		}),
	)
}
