// Package retention deletes what the service no longer needs to keep:
// notifications (with their deliveries, attempts and escalation steps),
// sent report e-mails,
// inbox rows, consumed rows of the SQL topics, resolved poison messages,
// cron runs and audit rows, each past its configured age. It deletes in
// small batches, each its own short transaction, so it never holds a lock
// on a hot table for long.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/internal/store"
)

// Policy is how long each kind of row is kept; zero keeps it forever.
type Policy struct {
	Notifications time.Duration
	Inbox         time.Duration
	Topics        time.Duration
	Poison        time.Duration
	Audit         time.Duration
	// Batch is the number of rows one delete removes.
	Batch int
}

// Retention applies a policy.
type Retention struct {
	q      store.RetentionExecutor
	ps     *sqlpubsub.PubSub
	topics []string
	policy Policy
	now    func() time.Time
	logger *slog.Logger
}

// New returns the retention job over db; topics are the SQL topics whose
// consumed rows it deletes (those of ps).
func New(db *bun.DB, ps *sqlpubsub.PubSub, topics []string, p Policy, now func() time.Time, logger *slog.Logger) *Retention {
	if p.Batch <= 0 {
		p.Batch = 1000
	}
	if now == nil {
		now = time.Now
	}
	return &Retention{q: store.NewQueries(db), ps: ps, topics: topics, policy: p, now: now, logger: logger}
}

// Run is the cron job.
func (r *Retention) Run(ctx context.Context, _ time.Time) error {
	deleted, err := r.Once(ctx)
	for what, n := range deleted {
		if n > 0 {
			r.logger.InfoContext(ctx, "retention: deleted", "what", what, "rows", n)
		}
	}
	return err
}

// target is one table's rule: its rows older than keep are deleted.
type target struct {
	table store.RetentionTable
	keep  time.Duration
}

// Once deletes everything past its retention and reports how many rows of
// each kind.
func (r *Retention) Once(ctx context.Context) (map[string]int, error) {
	p := r.policy
	targets := []target{
		{table: store.RetentionNotifications, keep: p.Notifications},
		// A sent report e-mail (the critical-result timeliness report) is
		// about notifications and is kept as long as they are; one still
		// to be sent stays.
		{table: store.RetentionReportMails, keep: p.Notifications},
		{table: store.RetentionInbox, keep: p.Inbox},
		{table: store.RetentionCronRuns, keep: p.Inbox},
		{table: store.RetentionPoisonMessages, keep: p.Poison},
		{table: store.RetentionAuditLog, keep: p.Audit},
		{table: store.RetentionLoginAudit, keep: p.Audit},
	}
	out := map[string]int{}
	now := r.now().UTC()
	for _, t := range targets {
		if t.keep <= 0 {
			continue
		}
		n, err := r.purge(ctx, t.table, now.Add(-t.keep))
		out[t.table.Name()] = n
		if err != nil {
			return out, err
		}
	}
	if p.Topics > 0 && r.ps != nil {
		for _, topic := range r.topics {
			n, err := r.purgeTopic(ctx, topic, now.Add(-p.Topics))
			out["topic:"+topic] = n
			if err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

func (r *Retention) purge(ctx context.Context, table store.RetentionTable, cutoff time.Time) (int, error) {
	total := 0
	for {
		n, err := r.q.RetentionDeleteBatch(ctx, &store.RetentionDeleteBatchParams{Table: table, Before: cutoff, Limit: r.policy.Batch})
		if err != nil {
			return total, fmt.Errorf("retention: %s: %w", table.Name(), err)
		}
		total += n
		if n < r.policy.Batch || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

type tableNamer interface{ MessagesTable(string) string }
type offsetsNamer interface{ MessagesOffsetsTable(string) string }

// purgeTopic deletes the rows of a SQL topic every consumer group has
// acknowledged and that are older than cutoff. A topic nobody consumes, or
// that has no table, is left alone.
func (r *Retention) purgeTopic(ctx context.Context, topic string, cutoff time.Time) (int, error) {
	tn, ok1 := r.ps.SchemaAdapter().(tableNamer)
	on, ok2 := r.ps.OffsetsAdapter().(offsetsNamer)
	if !ok1 || !ok2 {
		return 0, nil
	}
	messages, offsets := tn.MessagesTable(topic), on.MessagesOffsetsTable(topic)
	acked, ok, err := r.q.SQLTopicMinAcked(ctx, offsets)
	if err != nil {
		return 0, fmt.Errorf("retention: topic %s offsets: %w", topic, err)
	}
	if !ok {
		return 0, nil
	}
	total := 0
	for {
		n, err := r.q.SQLTopicDeleteAckedBatch(ctx, &store.SQLTopicDeleteAckedBatchParams{
			MessagesTable: messages, Acked: acked, Before: cutoff, Limit: r.policy.Batch,
		})
		if err != nil {
			return total, fmt.Errorf("retention: topic %s: %w", topic, err)
		}
		total += n
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		if n < r.policy.Batch {
			break
		}
	}
	return total, r.reportHeldBack(ctx, topic, messages, offsets, acked, cutoff)
}

// reportHeldBack warns when rows past the cutoff stay because a consumer
// group has not acknowledged them: a consumer that is down, or a group no
// longer in use (a renamed RFD_CONSUMER_GROUP_PREFIX leaves its old groups
// behind), which would keep the topic growing for ever. Deleting rows a
// group has not read could lose its messages, so retention only says which
// group it waits for.
func (r *Retention) reportHeldBack(ctx context.Context, topic, messages, offsets string, acked int64, cutoff time.Time) error {
	waiting, err := r.q.SQLTopicCountHeldBack(ctx, &store.SQLTopicHeldBackParams{MessagesTable: messages, Acked: acked, Before: cutoff})
	if err != nil {
		return fmt.Errorf("retention: topic %s: %w", topic, err)
	}
	if waiting == 0 {
		return nil
	}
	groups, err := r.q.SQLTopicGroupsAt(ctx, &store.SQLTopicGroupsAtParams{OffsetsTable: offsets, Acked: acked})
	if err != nil {
		return fmt.Errorf("retention: topic %s: %w", topic, err)
	}
	r.logger.WarnContext(ctx, "retention: consumer groups hold back a topic's purge; remove a group no longer in use from the offsets table",
		"topic", topic, "groups", strings.Join(groups, ","), "acknowledged_offset", acked, "rows_waiting", waiting, "offsets_table", offsets)
	return nil
}
