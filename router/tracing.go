package router

import (
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/platform/tracing"
)

// traced runs each message in a consumer span, the child of the span
// context its producer put in the metadata (traceparent): the outbox of
// the API request or consumer that published it, or an upstream system.
// Messages published by the handler through the outbox carry this span on.
func traced(h Handler) message.HandlerMiddleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := tracing.Extract(msg.Context(), msg)
			ctx, span := tracing.Tracer().Start(ctx, "consume "+h.Name,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String("messaging.destination.name", h.Topic),
					attribute.String("messaging.consumer.group.name", h.ConsumerGroup),
					attribute.String("messaging.message.id", msg.UUID),
				))
			defer span.End()
			msg.SetContext(ctx)
			out, err := next(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "handler failed")
			}
			return out, err
		}
	}
}
