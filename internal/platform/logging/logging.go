// Package logging builds the service's slog logger. Every record logged with
// a context carries that context's correlation id, so one request or event
// can be followed across roles. Message payloads are never logged: they
// carry patient data.
package logging

import (
	"context"
	"fmt"
	"github.com/ThreeDotsLabs/watermill"
	"io"
	"log/slog"
)

type ctxKey struct{}

// WithCorrelationID returns ctx carrying the correlation id.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// CorrelationID is the correlation id carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a logger writing format ("json" or "text") at level
// ("debug", "info", "warn", "error") to w.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch format {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", format)
	}
	return slog.New(correlationHandler{h}), nil
}

// correlationHandler adds correlation_id from the record's context.
type correlationHandler struct{ slog.Handler }

func (h correlationHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := CorrelationID(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h correlationHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return correlationHandler{h.Handler.WithAttrs(attrs)}
}

func (h correlationHandler) WithGroup(name string) slog.Handler {
	return correlationHandler{h.Handler.WithGroup(name)}
}

type loggerKey struct{}

// WithLogger returns ctx carrying logger.
func WithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, logger)
}

// FromContext is the logger carried by ctx, or slog.Default().
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// WatermillLogger adapts slog to watermill's LoggerAdapter. It drops
// watermill's trace level (which prints SQL arguments, i.e. payloads) and any
// "payload" field, so message bodies never reach the logs.
type WatermillLogger struct {
	l      *slog.Logger
	fields []any
}

// NewWatermill returns the adapter over l.
func NewWatermill(l *slog.Logger) *WatermillLogger {
	return &WatermillLogger{l: l}
}

func (w *WatermillLogger) attrs(fields map[string]any) []any {
	out := append([]any(nil), w.fields...)
	for k, v := range fields {
		if k == "payload" || k == "query_args" {
			continue
		}
		out = append(out, k, v)
	}
	return out
}

// Error logs at error level.
func (w *WatermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.l.Error(msg, append(w.attrs(fields), "error", err)...)
}

// Info logs at info level.
func (w *WatermillLogger) Info(msg string, fields watermill.LogFields) {
	w.l.Info(msg, w.attrs(fields)...)
}

// Debug logs at debug level.
func (w *WatermillLogger) Debug(msg string, fields watermill.LogFields) {
	w.l.Debug(msg, w.attrs(fields)...)
}

// Trace is dropped: watermill's trace lines carry query arguments.
func (w *WatermillLogger) Trace(string, watermill.LogFields) {}

// With returns a logger with fields added to every line.
func (w *WatermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &WatermillLogger{l: w.l, fields: w.attrs(fields)}
}
