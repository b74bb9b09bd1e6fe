package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Inbox records which messages each consumer has processed. A consumer's
// work and its inbox row commit in one transaction, so a redelivered message
// finds its row and changes nothing twice.
type Inbox struct {
	db *bun.DB
}

// NewInbox returns the inbox kept in db (table inbox, see migrations).
func NewInbox(db *bun.DB) *Inbox {
	return &Inbox{db: db}
}

// Work is a consumer's effect on the database. It must do all of its writes,
// and its outbox publishes, through tx.
type Work func(ctx context.Context, tx bun.Tx) error

// Process runs work in one transaction together with the inbox insert of
// (consumer, messageID). It returns duplicate=true, without running work,
// when that message was already processed; the caller acks it all the same.
// If work fails, nothing is recorded and the message can be tried again.
func (i *Inbox) Process(ctx context.Context, consumer, messageID string, work Work) (duplicate bool, err error) {
	if messageID == "" {
		return false, fmt.Errorf("inbox %s: message has no id", consumer)
	}
	err = i.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := ExecContext(ctx, tx,
			"INSERT INTO inbox (consumer, message_id, processed_at) VALUES (?, ?, ?) ON CONFLICT (consumer, message_id) DO NOTHING",
			consumer, messageID, time.Now().UTC(),
		)
		if err != nil {
			return fmt.Errorf("inbox insert: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("inbox insert: %w", err)
		}
		if n == 0 {
			duplicate = true
			return nil
		}
		return work(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("inbox %s: %w", consumer, err)
	}
	return duplicate, nil
}
