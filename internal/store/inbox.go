package store

import (
	"context"
	"fmt"
	"slices"
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
	fresh, err := i.ProcessBatch(ctx, consumer, []string{messageID}, func(ctx context.Context, tx bun.Tx, _ []bool) error {
		return work(ctx, tx)
	})
	if err != nil {
		return false, err
	}
	return !fresh[0], nil
}

// BatchWork is Work for a batch of messages: fresh[i] reports whether
// message i is new, i.e. whether its work is to be done.
type BatchWork func(ctx context.Context, tx bun.Tx, fresh []bool) error

// ProcessBatch is Process for several messages in one transaction: one
// insert records them all, and work does the fresh ones' work. It is all
// or nothing: if work fails, no message is recorded. It returns which
// messages were fresh (of two copies of one message, only the first can
// be); work does not run when none is.
func (i *Inbox) ProcessBatch(ctx context.Context, consumer string, messageIDs []string, work BatchWork) (fresh []bool, err error) {
	if len(messageIDs) == 0 {
		return nil, nil
	}
	index, err := messageIndex(consumer, messageIDs)
	if err != nil {
		return nil, err
	}
	err = i.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		fresh, err = i.record(ctx, tx, consumer, messageIDs, index)
		if err != nil || !slices.Contains(fresh, true) {
			return err
		}
		return work(ctx, tx, fresh)
	})
	if err != nil {
		return nil, fmt.Errorf("inbox %s: %w", consumer, err)
	}
	return fresh, nil
}

// Record records messageIDs as processed by consumer in tx, a transaction
// of the caller's that does their work, and reports which were fresh; of
// two copies of one message, only the first can be.
func (i *Inbox) Record(ctx context.Context, tx bun.Tx, consumer string, messageIDs []string) (fresh []bool, err error) {
	if len(messageIDs) == 0 {
		return nil, nil
	}
	index, err := messageIndex(consumer, messageIDs)
	if err != nil {
		return nil, err
	}
	fresh, err = i.record(ctx, tx, consumer, messageIDs, index)
	if err != nil {
		return nil, fmt.Errorf("inbox %s: %w", consumer, err)
	}
	return fresh, nil
}

// messageIndex is each message id's first place in messageIDs: a second
// copy in a batch is a duplicate of the first.
func messageIndex(consumer string, messageIDs []string) (map[string]int, error) {
	index := make(map[string]int, len(messageIDs))
	for n, id := range messageIDs {
		if id == "" {
			return nil, fmt.Errorf("inbox %s: message has no id", consumer)
		}
		if _, dup := index[id]; !dup {
			index[id] = n
		}
	}
	return index, nil
}

func (i *Inbox) record(ctx context.Context, tx bun.Tx, consumer string, messageIDs []string, index map[string]int) ([]bool, error) {
	fresh := make([]bool, len(messageIDs))
	query, args := inboxInsert(consumer, messageIDs, time.Now().UTC())
	err := Rows(ctx, tx, query, args, func(scan Scan) error {
		var id string
		if err := scan(&id); err != nil {
			return err
		}
		fresh[index[id]] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inbox insert: %w", err)
	}
	return fresh, nil
}

// inboxInsert is the multi-row inbox insert of ids, returning those that
// were not there yet.
func inboxInsert(consumer string, ids []string, now time.Time) (string, []any) {
	args := make([]any, 0, 3*len(ids))
	for _, id := range ids {
		args = append(args, consumer, id, now)
	}
	return "INSERT INTO inbox (consumer, message_id, processed_at) VALUES " + Repeat("(?, ?, ?)", len(ids)) +
		" ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id", args
}
