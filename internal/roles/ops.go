package roles

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/wire"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/lag"
	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
	"github.com/rfd-notify/rfd/migrations"
)

// OpsSet provides the diagnosis commands `rfd lag` and `rfd outbox status`.
var OpsSet = wire.NewSet(NewLogger, OpenExistingDB, NewMigrator, NewSQLPubSub, NewOps)

// Ops answers the operators' questions from the broker and the database,
// as the metrics do: how far behind is each consumer group, and how much
// of the outbox waits to be relayed.
type Ops struct {
	cfg       config.Config
	consumers lag.Reader
	outbox    *lag.SQLReader
}

// NewOps returns the diagnosis commands of the configured transport, on a
// database whose schema is current.
func NewOps(ctx context.Context, cfg config.Config, db *bun.DB, m *migrations.Migrator, ps *sqlpubsub.PubSub) (*Ops, error) {
	if _, err := currentSchema(ctx, m, false, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	sqlr, err := lag.NewSQLReader(db, ps)
	if err != nil {
		return nil, err
	}
	o := &Ops{cfg: cfg, consumers: sqlr, outbox: sqlr}
	if cfg.Transport == config.TransportKafka {
		o.consumers = lag.NewKafkaReader(cfg.KafkaBrokers)
	}
	return o, nil
}

// Lag prints, per consumer, its topic, group, messages behind and the age
// of the oldest unconsumed message; on Kafka also the outbox backlog.
func (o *Ops) Lag(ctx context.Context, w io.Writer) error {
	pairs := make([]lag.Pair, 0, len(config.Consumers))
	for _, c := range config.Consumers {
		pairs = append(pairs, lag.Pair{Topic: o.cfg.TopicOf(c), Group: o.cfg.ConsumerGroup(c)})
	}
	lags, err := o.consumers.Read(ctx, pairs)
	if err != nil {
		return err
	}
	found := map[lag.Pair]lag.Lag{}
	for _, l := range lags {
		found[l.Pair] = l
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "TRANSPORT\tTOPIC\tGROUP\tMESSAGES\tOLDEST")
	for _, p := range pairs {
		l, ok := found[p]
		if !ok {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t-\t(topic not created yet)\n", o.consumers.Transport(), p.Topic, p.Group)
			continue
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", o.consumers.Transport(), p.Topic, p.Group, l.Messages, l.OldestAge.Round(time.Second))
	}
	if o.cfg.Transport == config.TransportKafka {
		b, err := o.backlog(ctx)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(tw, "sql\t%s\t%s\t%d\t%s\n", b.Topic, b.Group, b.Messages, b.OldestAge.Round(time.Second))
	}
	return tw.Flush()
}

func (o *Ops) backlog(ctx context.Context) (lag.Lag, error) {
	p := lag.Pair{Topic: o.cfg.TopicOutbox, Group: o.cfg.ConsumerGroup("forwarder")}
	ls, err := o.outbox.Read(ctx, []lag.Pair{p})
	if err != nil {
		return lag.Lag{}, err
	}
	if len(ls) == 0 {
		return lag.Lag{Pair: p}, nil // nothing was ever written to the outbox
	}
	return ls[0], nil
}

// OutboxStatus prints the messages committed to the outbox and not yet
// relayed to Kafka, and the age of the oldest.
func (o *Ops) OutboxStatus(ctx context.Context, w io.Writer) error {
	if o.cfg.Transport != config.TransportKafka {
		_, err := fmt.Fprintln(w, "sql transport: the outbox writes to its topics directly; nothing to relay (see `rfd lag`)")
		return err
	}
	b, err := o.backlog(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "outbox %s, relayed by group %s: %d messages waiting, oldest %s\n",
		b.Topic, b.Group, b.Messages, b.OldestAge.Round(time.Second))
	return err
}
