package sqlpubsub

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
)

// postgresSchema is watermill-sql's PostgreSQL schema with one change: the
// message id column is TEXT instead of VARCHAR(36). Message ids are the
// CloudEvents ids of inbound events, which other systems choose and which
// need not be 36-character UUIDs.
type postgresSchema struct {
	sql.DefaultPostgreSQLSchema
}

const upstreamUUIDColumn = `"uuid" VARCHAR(36) NOT NULL`

func (s postgresSchema) SchemaInitializingQueries(params sql.SchemaInitializingQueriesParams) ([]sql.Query, error) {
	qs, err := s.DefaultPostgreSQLSchema.SchemaInitializingQueries(params)
	if err != nil {
		return nil, err
	}
	replaced := false
	for i, q := range qs {
		if strings.Contains(q.Query, upstreamUUIDColumn) {
			qs[i].Query = strings.Replace(q.Query, upstreamUUIDColumn, `"uuid" TEXT NOT NULL`, 1)
			replaced = true
		}
	}
	if !replaced {
		// watermill-sql changed its DDL: fail loudly rather than silently
		// cap message ids at 36 characters again.
		return nil, fmt.Errorf("sqlpubsub: watermill-sql's PostgreSQL schema no longer declares %s", upstreamUUIDColumn)
	}
	return qs, nil
}

// SelectQuery reads the next batch after the consumer group's last
// processed (transaction_id, offset), of transactions older than every
// running one, in order. Upstream writes the position test as
// "(transaction_id = t AND offset > o) OR transaction_id > t" inside a
// subquery, which the planner answers by fetching every row past the
// position and sorting them for the LIMIT: each poll costs the whole
// backlog, so a relay that falls behind falls further behind (the outbox
// forwarder read ~190 rows per event relayed under load). The same test as
// a row comparison is a range condition on the primary key
// (transaction_id, offset): an index scan that starts at the position and
// stops after the batch.
func (s postgresSchema) SelectQuery(params sql.SelectQueryParams) (sql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(sql.NextOffsetQueryParams{Topic: params.Topic, ConsumerGroup: params.ConsumerGroup})
	if err != nil {
		return sql.Query{}, err
	}
	batch := s.SubscribeBatchSize
	if batch <= 0 {
		batch = 100
	}
	q := `WITH last_processed AS (` + next.Query + `)
SELECT "offset", transaction_id, uuid, payload, metadata FROM ` + s.MessagesTable(params.Topic) + `
WHERE (transaction_id, "offset") > ((SELECT last_processed_transaction_id FROM last_processed), (SELECT offset_acked FROM last_processed))
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id ASC, "offset" ASC
LIMIT ` + strconv.Itoa(batch)
	return sql.Query{Query: q, Args: next.Args}, nil
}
