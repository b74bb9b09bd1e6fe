package router

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
)

// outcomes counts, per consumer, the messages that ended processed or
// failed (after the retries, before the poison queue), and remembers when
// the last one succeeded: "is user-created still moving?" is a question
// about this timestamp.
type outcomes struct {
	total       *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

func newOutcomes(reg prometheus.Registerer) (*outcomes, error) {
	o := &outcomes{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rfd", Name: "consumer_messages_total",
			Help: "Messages a consumer finished, by result: processed, or failed (permanent or retries exhausted: poisoned, or nacked while a dependency is down).",
		}, []string{"consumer", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "rfd", Name: "consumer_last_success_timestamp_seconds",
			Help: "Unix time of the last message a consumer processed successfully.",
		}, []string{"consumer"}),
	}
	for i, c := range []prometheus.Collector{o.total, o.lastSuccess} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("router metrics: %w", err)
			}
			if i == 0 {
				o.total = are.ExistingCollector.(*prometheus.CounterVec)
			} else {
				o.lastSuccess = are.ExistingCollector.(*prometheus.GaugeVec)
			}
		}
	}
	return o, nil
}

func (o *outcomes) middleware(consumer string) message.HandlerMiddleware {
	processed := o.total.WithLabelValues(consumer, "processed")
	failed := o.total.WithLabelValues(consumer, "failed")
	last := o.lastSuccess.WithLabelValues(consumer)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil {
				failed.Inc()
				return out, err
			}
			processed.Inc()
			last.Set(float64(time.Now().UnixNano()) / 1e9)
			return out, nil
		}
	}
}
