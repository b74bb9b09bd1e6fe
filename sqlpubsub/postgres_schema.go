package sqlpubsub

import (
	"fmt"
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
