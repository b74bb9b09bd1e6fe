// Package tracing is the service's OpenTelemetry tracing: the tracer
// provider (an OTLP/HTTP exporter when RFD_OTEL_ENDPOINT is set, nothing
// otherwise), and the W3C trace context carried in message metadata, so
// that a trace started by an API request or an inbound event continues
// through the outbox, Kafka headers (traceparent) and the consumers to the
// provider call. Spans carry ids, names and statuses, never payloads.
package tracing

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/rfd-notify/rfd/internal/platform/config"
)

// Name is the instrumentation scope of the service's spans.
const Name = "github.com/rfd-notify/rfd"

// propagator is W3C trace context, whatever the global one is.
var propagator = propagation.TraceContext{}

// Tracer returns the service's tracer from the global provider (a no-op
// until Setup installs an exporting one, or a test installs its own).
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Setup installs the OTLP exporter of cfg as the global tracer provider.
// Without RFD_OTEL_ENDPOINT it changes nothing and spans are not recorded.
// The returned function flushes and stops the exporter.
func Setup(ctx context.Context, cfg config.Config) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagator)
	if cfg.OTelEndpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTelEndpoint+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(cfg.OTelServiceName))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.OTelSampleRatio))),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// metadataCarrier lets the propagator read and write message metadata.
type metadataCarrier message.Metadata

func (c metadataCarrier) Get(key string) string { return c[key] }
func (c metadataCarrier) Set(key, value string) { c[key] = value }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the span context of ctx into msg's metadata (traceparent,
// tracestate); on Kafka they become record headers.
func Inject(ctx context.Context, msg *message.Message) {
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	propagator.Inject(ctx, metadataCarrier(msg.Metadata))
}

// Extract returns ctx with the span context carried by msg, if any.
func Extract(ctx context.Context, msg *message.Message) context.Context {
	return propagator.Extract(ctx, metadataCarrier(msg.Metadata))
}

// ExtractHTTP returns ctx with the span context of the request headers.
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}
