package templates

import (
	"encoding/xml"
	"errors"
	"html"
	htmltemplate "html/template"
	"io"
	"reflect"
	"strings"
	"testing"
	texttemplate "text/template"
	"unicode"
	"unicode/utf8"
)

// portalURL is a realistic link: the SMS length budget is measured with it.
const portalURL = "https://portal.rfd-notify.co.th/n/01J9Z8K3M4N5P6" // 48 chars

// fixture is a synthetic patient whose PHI values are distinctive, so any
// leak into a public channel is found by a plain substring search. None of
// the pieces below may occur in the non-PHI fields or in template text.
func fixture() Data {
	return Data{
		DoctorName:        "Dr. Anong Sriwan",
		PortalURL:         portalURL,
		NotificationID:    "01J9Z8K3M4N5P6",
		OrderStatus:       "completed",
		DeviceHint:        "Chrome on macOS",
		Count:             3,
		AnnouncementTitle: "Scheduled maintenance",
		AnnouncementBody:  "The portal will be unavailable on Sunday from 01:00 to 03:00.",

		PatientName:      "Zyxwv Patientname",
		PatientRef:       "PT-ZZ-9911",
		TestName:         "Qwerty Glucose Panel",
		ResultValue:      "987.65",
		OrderDescription: "Lipidzz panel",
		CheckupID:        "CHK-PHI-777",
		OrderID:          "ORD-PHI-888",
	}
}

// phiPieces are the full PHI values and fragments of them: a template that
// printed only part of a value (a surname, the digits of a reference) must
// still be caught.
var phiPieces = []string{
	"Zyxwv Patientname", "Zyxwv", "Patientname",
	"PT-ZZ-9911", "ZZ-9911", "9911",
	"Qwerty Glucose Panel", "Qwerty", "Glucose Panel",
	"987.65", "987", "65",
	"Lipidzz panel", "Lipidzz",
	"CHK-PHI-777", "PHI-777", "777",
	"ORD-PHI-888", "PHI-888", "888",
}

func publicChannels() []string { return []string{ChannelEmail, ChannelSMS, ChannelPush} }

func renderableChannels() []string {
	return []string{ChannelInApp, ChannelEmail, ChannelSMS, ChannelPush}
}

// parts returns the rendered parts a channel must fill, by name.
func parts(channel string, r Rendered) map[string]string {
	switch channel {
	case ChannelEmail:
		return map[string]string{"subject": r.Subject, "text": r.Text, "html": r.HTML}
	case ChannelSMS:
		return map[string]string{"text": r.Text}
	default: // push, in_app
		return map[string]string{"title": r.Title, "body": r.Body}
	}
}

func TestEveryTemplateRenders(t *testing.T) {
	for _, loc := range Locales() {
		for _, typ := range Types() {
			for _, ch := range renderableChannels() {
				r, err := Render(typ, ch, loc, fixture())
				if err != nil {
					t.Errorf("%s/%s/%s: %v", typ, ch, loc, err)
					continue
				}
				for name, s := range parts(ch, r) {
					if strings.TrimSpace(s) == "" {
						t.Errorf("%s/%s/%s: empty %s", typ, ch, loc, name)
					}
					// Leftovers of a broken template.
					if strings.Contains(s, "<no value>") || strings.Contains(s, "{{") {
						t.Errorf("%s/%s/%s %s: unrendered template text: %q", typ, ch, loc, name, s)
					}
					// A Thai notification must be in Thai, not an English
					// fallback; announcement parts that are the operator's
					// own text verbatim are in whatever language they wrote.
					operatorText := s == fixture().AnnouncementTitle || s == fixture().AnnouncementBody
					if loc == LocaleTH && !operatorText && !containsThai(s) {
						t.Errorf("%s/%s/%s %s: no Thai text: %q", typ, ch, loc, name, s)
					}
				}
				if ch == ChannelEmail {
					checkHTML(t, typ+"/"+loc, r.HTML, loc)
					if !strings.Contains(r.Text, portalURL) {
						t.Errorf("%s/email/%s: text has no portal link", typ, loc)
					}
				}
				if ch == ChannelSMS && !strings.Contains(r.Text, portalURL) {
					t.Errorf("%s/sms/%s: no portal link: %q", typ, loc, r.Text)
				}
			}
		}
	}
}

// Templates must also render when optional fields are missing (e.g. no
// doctor name, no device hint, count 0), without "<no value>" holes.
func TestEveryTemplateRendersWithSparseData(t *testing.T) {
	for _, loc := range Locales() {
		for _, typ := range Types() {
			for _, ch := range renderableChannels() {
				r, err := Render(typ, ch, loc, Data{PortalURL: portalURL})
				if err != nil {
					t.Errorf("%s/%s/%s: %v", typ, ch, loc, err)
					continue
				}
				for name, s := range parts(ch, r) {
					if strings.Contains(s, "<no value>") {
						t.Errorf("%s/%s/%s %s: %q", typ, ch, loc, name, s)
					}
				}
			}
		}
	}
}

func containsThai(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Thai, r) {
			return true
		}
	}
	return false
}

// checkHTML parses the email HTML strictly as XML (the templates are written
// as well-formed markup for that reason) and checks the expected skeleton.
func checkHTML(t *testing.T, what, doc, loc string) {
	t.Helper()
	if !strings.HasPrefix(doc, "<!DOCTYPE html>") {
		t.Errorf("%s: html does not start with a doctype", what)
	}
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	var (
		root, lang   string
		sawBody      bool
		sawPortalRef bool
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("%s: html is not well-formed: %v\n%s", what, err, doc)
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root == "" {
			root = se.Name.Local
			for _, a := range se.Attr {
				if a.Name.Local == "lang" {
					lang = a.Value
				}
			}
		}
		if se.Name.Local == "body" {
			sawBody = true
		}
		if se.Name.Local == "a" {
			for _, a := range se.Attr {
				if a.Name.Local == "href" && a.Value == portalURL {
					sawPortalRef = true
				}
			}
		}
	}
	if root != "html" || lang != loc {
		t.Errorf("%s: root element %q lang %q, want html lang %q", what, root, lang, loc)
	}
	if !sawBody {
		t.Errorf("%s: no <body>", what)
	}
	if !sawPortalRef {
		t.Errorf("%s: no link to the portal", what)
	}
}

func TestHTMLEscapesData(t *testing.T) {
	d := fixture()
	d.DoctorName = `<script>alert("x")</script>`
	d.DeviceHint = `<img src=x onerror=alert(1)>`
	d.AnnouncementTitle = `<b>bold</b>`
	for _, loc := range Locales() {
		for _, typ := range Types() {
			r, err := Render(typ, ChannelEmail, loc, d)
			if err != nil {
				t.Fatalf("%s/%s: %v", typ, loc, err)
			}
			for _, raw := range []string{"<script", "<img", "<b>"} {
				if strings.Contains(r.HTML, raw) {
					t.Errorf("%s/%s: unescaped %q in html", typ, loc, raw)
				}
			}
			// The greeting is in every email: the name must be there, escaped.
			if !strings.Contains(r.HTML, "&lt;script&gt;") {
				t.Errorf("%s/%s: escaped doctor name missing from html", typ, loc)
			}
		}
	}
}

// The core privacy test: nothing of the synthetic patient may appear in any
// SMS, push or email part, in any type or locale.
func TestNoPHIOutsideInApp(t *testing.T) {
	d := fixture()
	for _, loc := range Locales() {
		for _, typ := range Types() {
			for _, ch := range publicChannels() {
				r, err := Render(typ, ch, loc, d)
				if err != nil {
					t.Fatalf("%s/%s/%s: %v", typ, ch, loc, err)
				}
				for name, s := range parts(ch, r) {
					// Also search the HTML with entities decoded, so an
					// escaped value cannot hide.
					for _, hay := range []string{s, html.UnescapeString(s)} {
						low := strings.ToLower(hay)
						for _, piece := range phiPieces {
							if strings.Contains(low, strings.ToLower(piece)) {
								t.Errorf("%s/%s/%s %s: contains PHI %q:\n%s", typ, ch, loc, name, piece, s)
							}
						}
					}
				}
			}
		}
	}
}

// The same fixture does show up in in_app, so TestNoPHIOutsideInApp is not
// passing merely because the fixture never reaches any template.
func TestInAppShowsDetail(t *testing.T) {
	d := fixture()
	want := map[string][]string{
		TypeResultAvailable:  {d.PatientName, d.PatientRef, d.TestName, d.ResultValue},
		TypeResultCorrected:  {d.PatientName, d.PatientRef, d.TestName, d.ResultValue},
		TypeResultRetracted:  {d.PatientName, d.PatientRef, d.TestName},
		TypeCriticalResult:   {d.PatientName, d.PatientRef, d.TestName, d.ResultValue},
		TypeCheckupScheduled: {d.PatientName, d.PatientRef, d.CheckupID},
		TypeCheckupCompleted: {d.PatientName, d.PatientRef, d.CheckupID},
		TypeOrderStatus:      {d.PatientName, d.PatientRef, d.OrderID, d.OrderDescription},
	}
	for _, loc := range Locales() {
		for typ, values := range want {
			r, err := Render(typ, ChannelInApp, loc, d)
			if err != nil {
				t.Fatalf("%s/%s: %v", typ, loc, err)
			}
			all := r.Title + "\n" + r.Body
			for _, v := range values {
				if !strings.Contains(all, v) {
					t.Errorf("%s/in_app/%s: %q missing from %q", typ, loc, v, all)
				}
			}
		}
	}
}

func TestInAppExample(t *testing.T) {
	r, err := Render(TypeResultAvailable, ChannelInApp, LocaleEN, Data{
		PatientName: "Somchai J.", PatientRef: "PT-88812",
		TestName: "Fasting glucose", ResultValue: "5.4 mmol/L",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Fasting glucose for Somchai J. (PT-88812) is ready: 5.4 mmol/L"; r.Body != want {
		t.Errorf("body = %q, want %q", r.Body, want)
	}
}

// Every field of Data is either public or PHI, and publicView (what SMS,
// push and email templates receive) has none of the PHI ones. Adding a
// field to Data fails this test until someone decides which it is.
func TestPublicViewHasNoPHI(t *testing.T) {
	public := map[string]bool{
		"DoctorName": true, "PortalURL": true, "NotificationID": true, "OrderStatus": true,
		"DeviceHint": true, "Count": true, "PendingCount": true, "AnnouncementTitle": true, "AnnouncementBody": true,
	}
	phi := map[string]bool{
		"PatientName": true, "PatientRef": true, "TestName": true, "ResultValue": true,
		"OrderDescription": true, "CheckupID": true, "OrderID": true,
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Data]()) {
		if !public[f.Name] && !phi[f.Name] {
			t.Errorf("Data.%s is neither classified public nor PHI in this test", f.Name)
		}
	}
	for name := range fieldNames(reflect.TypeFor[publicView]()) {
		if phi[name] {
			t.Errorf("publicView has PHI field %s", name)
		}
	}
	// The views really carry what the templates are allowed to use.
	pv := newPublicView(fixture(), LocaleEN)
	if pv.DoctorName == "" || pv.PortalURL == "" || pv.OrderStatusText != "completed" {
		t.Errorf("newPublicView lost public data: %+v", pv)
	}
}

// The load-time walk rejects PHI references in public templates, including
// ones in branches that would never run in a test.
func TestCheckFieldsRejectsPHI(t *testing.T) {
	allowed := fieldNames(reflect.TypeFor[publicView]())
	bad := []string{
		`{{.PatientName}}`,
		`{{if .Count}}{{else}}{{.ResultValue}}{{end}}`,
		`{{with .DoctorName}}{{$.TestName}}{{end}}`,
		`{{range .DoctorName}}{{end}}{{printf "%s" .OrderID}}`,
		`{{template "x" .CheckupID}}`,
		`{{$d := .}}{{$d.PatientRef}}`,
		`{{(.DoctorName).OrderDescription}}`,
	}
	for _, src := range bad {
		tt := texttemplate.Must(texttemplate.New("t").Parse(src))
		if err := checkFields(tt.Tree.Root, allowed); err == nil {
			t.Errorf("text %q: PHI reference not rejected", src)
		}
		ht := htmltemplate.Must(htmltemplate.New("t").Parse(src))
		if err := checkFields(ht.Tree.Root, allowed); err == nil {
			t.Errorf("html %q: PHI reference not rejected", src)
		}
	}
	good := `{{if .DoctorName}}Hello {{.DoctorName}}{{end}} {{.Count}} {{$.PortalURL}}`
	tt := texttemplate.Must(texttemplate.New("t").Parse(good))
	if err := checkFields(tt.Tree.Root, allowed); err != nil {
		t.Errorf("public-only template rejected: %v", err)
	}
}

func TestSMSLength(t *testing.T) {
	d := fixture()
	d.Count = 1000 // widest realistic digest count
	for _, typ := range Types() {
		en, err := Render(typ, ChannelSMS, LocaleEN, d)
		if err != nil {
			t.Fatal(err)
		}
		// English must stay GSM-7 (one stray "—" would switch the whole
		// message to UCS-2, 70 chars) and fit one 160-septet segment.
		septets, ok := gsm7Len(en.Text)
		if !ok {
			t.Errorf("%s/en: not GSM-7: %q", typ, en.Text)
		} else if septets > 160 {
			t.Errorf("%s/en: %d septets > 160: %q", typ, septets, en.Text)
		}

		th, err := Render(typ, ChannelSMS, LocaleTH, d)
		if err != nil {
			t.Fatal(err)
		}
		// Thai is UCS-2: at most two concatenated parts of 67 characters.
		// All Thai runes are in the BMP, so runes = UCS-2 code units.
		if n := utf8.RuneCountInString(th.Text); n > 134 {
			t.Errorf("%s/th: %d characters > 134: %q", typ, n, th.Text)
		}
	}
}

// GSM 03.38 default alphabet; the extension table costs two septets.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "\f^{}\\[~]|€"
)

func gsm7Len(s string) (int, bool) {
	n := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			n++
		case strings.ContainsRune(gsm7Ext, r):
			n += 2
		default:
			return 0, false
		}
	}
	return n, true
}

func TestLocaleFallback(t *testing.T) {
	en, err := Render(TypeResultAvailable, ChannelSMS, LocaleEN, fixture())
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{"fr", "", "xx-YY"} {
		r, err := Render(TypeResultAvailable, ChannelSMS, loc, fixture())
		if err != nil {
			t.Fatalf("%q: %v", loc, err)
		}
		if r != en {
			t.Errorf("%q: got %q, want the English text %q", loc, r.Text, en.Text)
		}
	}
	th, err := Render(TypeResultAvailable, ChannelSMS, "th-TH", fixture())
	if err != nil {
		t.Fatal(err)
	}
	if !containsThai(th.Text) {
		t.Errorf("th-TH did not select Thai: %q", th.Text)
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := Render("no_such_type", ChannelEmail, LocaleEN, fixture()); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: err = %v, want ErrUnknownType", err)
	}
	if _, err := Render(TypeResultAvailable, "fax", LocaleEN, fixture()); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("unknown channel: err = %v, want ErrUnknownChannel", err)
	}
	r, err := Render(TypeResultAvailable, ChannelWebhook, LocaleEN, fixture())
	if !errors.Is(err, ErrNoTemplate) {
		t.Errorf("webhook: err = %v, want ErrNoTemplate", err)
	}
	if r != (Rendered{}) {
		t.Errorf("webhook: got %+v, want empty", r)
	}
}

func TestOrderStatusLocalized(t *testing.T) {
	cases := []struct{ status, loc, want string }{
		{"completed", LocaleEN, "completed"},
		{"sample_collected", LocaleEN, "sample collected"},
		{"cancelled", LocaleTH, "ยกเลิก"},
		{"completed", LocaleTH, "เสร็จสิ้น"},
		{"weird_upstream_value", LocaleEN, "updated"},
		{"", LocaleTH, "อัปเดต"},
	}
	for _, c := range cases {
		d := fixture()
		d.OrderStatus = c.status
		r, err := Render(TypeOrderStatus, ChannelSMS, c.loc, d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Text, c.want) {
			t.Errorf("%q/%s: %q does not contain %q", c.status, c.loc, r.Text, c.want)
		}
		if c.status != "" && strings.Contains(r.Text, c.status) && c.status != c.want {
			t.Errorf("%q/%s: raw status leaked into %q", c.status, c.loc, r.Text)
		}
	}
}

// Operator text goes into the subject header; it must stay one line.
func TestSubjectIsOneLine(t *testing.T) {
	d := fixture()
	d.AnnouncementTitle = "Maintenance\r\nBcc: attacker@example.com"
	r, err := Render(TypeAnnouncement, ChannelEmail, LocaleEN, d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		t.Errorf("subject has a line break: %q", r.Subject)
	}
}

func TestCriticalWordingIsUrgent(t *testing.T) {
	for _, ch := range publicChannels() {
		en, err := Render(TypeCriticalResult, ch, LocaleEN, fixture())
		if err != nil {
			t.Fatal(err)
		}
		th, err := Render(TypeCriticalResult, ch, LocaleTH, fixture())
		if err != nil {
			t.Fatal(err)
		}
		first := map[string]func(Rendered) string{
			ChannelEmail: func(r Rendered) string { return r.Subject },
			ChannelSMS:   func(r Rendered) string { return r.Text },
			ChannelPush:  func(r Rendered) string { return r.Title },
		}[ch]
		if !strings.Contains(first(en), "URGENT") {
			t.Errorf("%s/en: %q lacks URGENT", ch, first(en))
		}
		if !strings.Contains(first(th), "ด่วน") {
			t.Errorf("%s/th: %q lacks ด่วน", ch, first(th))
		}
	}
}

func TestListsAreCopies(t *testing.T) {
	if len(Types()) != 13 || len(Locales()) != 2 || len(Channels()) != 5 {
		t.Fatalf("Types %d Locales %d Channels %d", len(Types()), len(Locales()), len(Channels()))
	}
	Types()[0] = "mutated"
	if Types()[0] != TypeCheckupScheduled {
		t.Error("Types() exposes the package's slice")
	}
}
