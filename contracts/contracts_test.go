package contracts_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rfd-notify/rfd/contracts"
)

// message is one message type: its topic, CloudEvents type and files.
type message struct {
	topic, ceType, schema, example string
}

var messages = []message{
	{"checkup-events", "rfd.checkup.v1", contracts.CheckupEventSchema, contracts.CheckupEventExample},
	{"order-history-events", "rfd.order-history.v1", contracts.OrderHistoryEventSchema, contracts.OrderHistoryEventExample},
	{"user-created", "rfd.user-created.v1", contracts.UserCreatedSchema, contracts.UserCreatedExample},
	{"internal-login", "rfd.internal-login.v1", contracts.InternalLoginSchema, contracts.InternalLoginExample},
	{"send-notification", "rfd.send-notification.v1", contracts.SendNotificationSchema, contracts.SendNotificationExample},
	{"rfd-report-mail", "rfd.report-mail.v1", contracts.ReportMailSchema, contracts.ReportMailExample},
}

const poisonTopic = "rfd-poison"

var ceHeaders = []string{"ce_id", "ce_type", "ce_source", "ce_time", "ce_specversion"}

var poisonHeaders = []string{"reason_poisoned", "topic_poisoned", "handler_poisoned", "rfd_attempts", "rfd_poison_class"}

func compile(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	f, err := contracts.FS.Open(file)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err, "schema is not JSON")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	loc := "https://contracts.rfd-notify.example/" + file
	require.NoError(t, c.AddResource(loc, doc))
	sch, err := c.Compile(loc) // also validates the schema against its metaschema
	require.NoError(t, err)
	return sch
}

func readJSON(t *testing.T, file string) any {
	t.Helper()
	b, err := contracts.FS.ReadFile(file)
	require.NoError(t, err)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err, "%s is not JSON", file)
	return v
}

func TestExamplesValidate(t *testing.T) {
	for _, m := range messages {
		t.Run(m.example, func(t *testing.T) {
			sch := compile(t, m.schema)
			assert.NoError(t, sch.Validate(readJSON(t, m.example)))
		})
	}
}

func TestSchemasDeclareDraft202012AndID(t *testing.T) {
	for _, m := range messages {
		doc := readJSON(t, m.schema).(map[string]any)
		assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"], m.schema)
		assert.Equal(t, "https://contracts.rfd-notify.example/"+m.schema, doc["$id"], m.schema)
		assert.Equal(t, false, doc["additionalProperties"], m.schema)
	}
}

// Every contract file in the directory is embedded and named by a constant,
// so a new file cannot be forgotten by the binary or by these tests.
func TestEveryFileIsEmbeddedAndKnown(t *testing.T) {
	onDisk, err := filepath.Glob("*.json")
	require.NoError(t, err)
	known := []string{}
	for _, m := range messages {
		known = append(known, m.schema, m.example)
	}
	slices.Sort(onDisk)
	slices.Sort(known)
	assert.Equal(t, known, onDisk)
	for _, f := range append(onDisk, contracts.AsyncAPI, "README.md") {
		disk, err := os.ReadFile(f)
		require.NoError(t, err)
		embedded, err := contracts.FS.ReadFile(f)
		require.NoError(t, err)
		assert.Equal(t, disk, embedded, f)
	}
}

func TestReadmeListsFilesAndTypes(t *testing.T) {
	b, err := contracts.FS.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	for _, m := range messages {
		for _, s := range []string{m.topic, m.ceType, m.schema, m.example} {
			assert.Contains(t, readme, "`"+s+"`")
		}
	}
	for _, h := range append(slices.Clone(ceHeaders), poisonHeaders...) {
		assert.Contains(t, readme, "`"+h+"`")
	}
	assert.Contains(t, readme, "`asyncapi.yaml`")
}

// asyncAPI is the AsyncAPI document as generic YAML.
type asyncAPI map[string]any

func loadAsyncAPI(t *testing.T) asyncAPI {
	t.Helper()
	b, err := contracts.FS.ReadFile(contracts.AsyncAPI)
	require.NoError(t, err)
	// Into a plain map: yaml.v3 gives nested mappings the type of the
	// outermost one.
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	return doc
}

// resolve follows a local reference ("#/a/b") through the document.
func (d asyncAPI) resolve(t *testing.T, ref string) map[string]any {
	t.Helper()
	require.True(t, strings.HasPrefix(ref, "#/"), "not a local reference: %s", ref)
	var cur any = map[string]any(d)
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s: %s is not inside an object", ref, tok)
		cur, ok = m[tok]
		require.True(t, ok, "%s: no %s", ref, tok)
	}
	m, ok := cur.(map[string]any)
	require.True(t, ok, "%s is not an object", ref)
	return m
}

// deref returns m, or what it points at when it is a {$ref: ...}.
func (d asyncAPI) deref(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	if ref, ok := m["$ref"].(string); ok {
		return d.resolve(t, ref)
	}
	return m
}

// channelMessages returns the messages of the channel with this address.
func (d asyncAPI) channelMessages(t *testing.T, address string) []map[string]any {
	t.Helper()
	channels, _ := d["channels"].(map[string]any)
	for _, c := range channels {
		ch := c.(map[string]any)
		if ch["address"] != address {
			continue
		}
		msgs, _ := ch["messages"].(map[string]any)
		var out []map[string]any
		for _, m := range msgs {
			out = append(out, d.deref(t, m.(map[string]any)))
		}
		return out
	}
	t.Fatalf("no channel with address %s", address)
	return nil
}

// requiredHeaders returns the required header names of a message, through
// $refs and allOf.
func (d asyncAPI) requiredHeaders(t *testing.T, schema map[string]any) []string {
	schema = d.deref(t, schema)
	var out []string
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			out = append(out, r.(string))
		}
	}
	if all, ok := schema["allOf"].([]any); ok {
		for _, s := range all {
			out = append(out, d.requiredHeaders(t, s.(map[string]any))...)
		}
	}
	return out
}

func TestAsyncAPI(t *testing.T) {
	doc := loadAsyncAPI(t)
	require.Equal(t, "3.0.0", doc["asyncapi"])

	for _, m := range messages {
		t.Run(m.topic, func(t *testing.T) {
			msgs := doc.channelMessages(t, m.topic)
			require.Len(t, msgs, 1)
			msg := msgs[0]
			payload, ok := msg["payload"].(map[string]any)
			require.True(t, ok, "message has no payload")
			assert.Equal(t, "./"+m.schema, payload["$ref"])
			_, err := fs.Stat(contracts.FS, strings.TrimPrefix(payload["$ref"].(string), "./"))
			assert.NoError(t, err, "payload schema file")
			headers, ok := msg["headers"].(map[string]any)
			require.True(t, ok, "message has no headers")
			assert.Subset(t, doc.requiredHeaders(t, headers), ceHeaders)
			assert.Contains(t, msg["summary"], m.ceType)
			assert.Equal(t, "application/json", msg["contentType"])
		})
	}

	t.Run(poisonTopic, func(t *testing.T) {
		msgs := doc.channelMessages(t, poisonTopic)
		require.Len(t, msgs, 1)
		headers, ok := msgs[0]["headers"].(map[string]any)
		require.True(t, ok, "poison message has no headers")
		assert.Subset(t, doc.requiredHeaders(t, headers), poisonHeaders)
	})

	ce := doc.resolve(t, "#/components/schemas/CloudEventsHeaders")
	types := ce["properties"].(map[string]any)["ce_type"].(map[string]any)["enum"].([]any)
	for _, m := range messages {
		assert.Contains(t, types, m.ceType)
	}
}

// Every reference in the document resolves: local ones to a node, file ones
// to an embedded file.
func TestAsyncAPIReferencesResolve(t *testing.T) {
	doc := loadAsyncAPI(t)
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if strings.HasPrefix(ref, "#/") {
					doc.resolve(t, ref)
				} else {
					_, err := fs.Stat(contracts.FS, strings.TrimPrefix(ref, "./"))
					assert.NoError(t, err, "reference %s", ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(map[string]any(doc))
	assert.Greater(t, n, 20)

	// Every operation names a channel of the document and messages of it.
	ops := doc["operations"].(map[string]any)
	addresses := map[string]bool{}
	for name, o := range ops {
		op := o.(map[string]any)
		assert.Contains(t, []any{"send", "receive"}, op["action"], name)
		ch := doc.deref(t, op["channel"].(map[string]any))
		addresses[ch["address"].(string)] = true
		assert.NotEmpty(t, op["messages"], name)
	}
	for _, m := range messages {
		assert.True(t, addresses[m.topic], "no operation on %s", m.topic)
	}
	assert.True(t, addresses[poisonTopic], "no operation on %s", poisonTopic)
}
