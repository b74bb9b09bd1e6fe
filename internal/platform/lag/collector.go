package lag

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collectTimeout bounds one scrape's measurement.
const collectTimeout = 5 * time.Second

var (
	lagMessagesDesc = prometheus.NewDesc("rfd_consumer_lag_messages",
		"Messages of the topic not yet consumed by the consumer group.", []string{"transport", "topic", "group"}, nil)
	lagSecondsDesc = prometheus.NewDesc("rfd_consumer_lag_seconds",
		"Age of the oldest message of the topic not yet consumed by the consumer group; 0 when caught up.", []string{"transport", "topic", "group"}, nil)
	backlogDesc = prometheus.NewDesc("rfd_outbox_backlog",
		"Outbox messages committed but not yet relayed to Kafka (always 0 on the SQL transport, where the outbox writes to the topics directly).", nil, nil)
	backlogAgeDesc = prometheus.NewDesc("rfd_outbox_oldest_unrelayed_age_seconds",
		"Age of the oldest outbox message not yet relayed to Kafka; 0 when none.", nil, nil)
	upDesc = prometheus.NewDesc("rfd_lag_scrape_success",
		"1 if the last measurement of consumer lag and outbox backlog succeeded.", nil, nil)
)

// Collector measures lag when Prometheus scrapes.
type Collector struct {
	consumers Reader
	pairs     []Pair
	// outbox measures the forwarder's group on the outbox topic; nil on
	// the SQL transport (no relay: the backlog is 0).
	outbox     Reader
	outboxPair Pair
	logger     *slog.Logger
}

// NewCollector measures pairs with consumers and, when outbox is not nil,
// the outbox backlog of outboxPair.
func NewCollector(consumers Reader, pairs []Pair, outbox Reader, outboxPair Pair, logger *slog.Logger) *Collector {
	return &Collector{consumers: consumers, pairs: pairs, outbox: outbox, outboxPair: outboxPair, logger: logger}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lagMessagesDesc, lagSecondsDesc, backlogDesc, backlogAgeDesc, upDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	ok := 1.0
	if len(c.pairs) > 0 {
		lags, err := c.consumers.Read(ctx, c.pairs)
		if err != nil {
			c.logger.Warn("consumer lag not measured", "error", err)
			ok = 0
		}
		for _, l := range lags {
			labels := []string{c.consumers.Transport(), l.Topic, l.Group}
			ch <- prometheus.MustNewConstMetric(lagMessagesDesc, prometheus.GaugeValue, float64(l.Messages), labels...)
			ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, l.OldestAge.Seconds(), labels...)
		}
	}
	backlog, age, measured := 0.0, 0.0, true
	if c.outbox != nil {
		lags, err := c.outbox.Read(ctx, []Pair{c.outboxPair})
		if err != nil {
			c.logger.Warn("outbox backlog not measured", "error", err)
			ok, measured = 0, false
		}
		for _, l := range lags {
			backlog, age = float64(l.Messages), l.OldestAge.Seconds()
		}
	}
	if measured {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, backlog)
		ch <- prometheus.MustNewConstMetric(backlogAgeDesc, prometheus.GaugeValue, age)
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, ok)
}
