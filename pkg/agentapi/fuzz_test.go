package agentapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// FuzzHandler: any method, path, query and body gets an answer with a
// known status, an error body naming its code, and exactly one count;
// every 400 is reported as invalid input, nothing else is; never a panic.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, target, body string }{
		{"POST", "/v1/addresses", `{"network":"blue","owner":"cni:c/eth0"}`},
		{"DELETE", "/v1/addresses", `{"network":"blue","owner":"cni:c/eth0"}`},
		{"DELETE", "/v1/addresses", `{"network":"blue","owner":"x","ip":"10.100.1.2"}`},
		{"GET", "/v1/addresses?network=blue&owner-prefix=cni:", ``},
		{"GET", "/v1/addresses?network=blue&network=red", ``},
		{"GET", "/v1/networks/blue", ``},
		{"GET", "/v1/status", ``},
		{"PUT", "/v1/addresses", `{}`},
	} {
		f.Add(s.method, s.target, []byte(s.body))
	}
	methods := map[string]bool{"GET": true, "POST": true, "DELETE": true, "PUT": true, "PATCH": true}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		if !methods[method] {
			return
		}
		req, err := http.NewRequest(method, "http://agent"+target, bytes.NewReader(body))
		if err != nil || req.URL.Host != "agent" {
			return
		}
		var invalid, counted int
		h := Handler(&fakeBackend{ready: true, held: map[netip.Addr]string{}}, HandlerOptions{
			OnInvalid: func(error) { invalid++ },
			OnRequest: func(string, Code) { counted++ },
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusNoContent:
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return // the mux cleaning a path: no call was made
		default:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Error == "" {
				t.Fatalf("%s %q: %d with body %q", method, target, rec.Code, rec.Body)
			}
			if status, _ := lookup(e.Code); status != rec.Code {
				t.Fatalf("%s %q: status %d for code %s", method, target, rec.Code, e.Code)
			}
		}
		if counted != 1 {
			t.Fatalf("%s %q: counted %d times", method, target, counted)
		}
		if want := b2i(rec.Code == http.StatusBadRequest); invalid != want {
			t.Fatalf("%s %q: %d: reported invalid %d times, want %d", method, target, rec.Code, invalid, want)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
