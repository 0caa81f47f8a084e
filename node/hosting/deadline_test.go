package hosting

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Every response gets a fresh write deadline: a keep-alive connection idle
// past the previous one still serves, and a client that reads nothing is
// cut off.
func TestWriteDeadline(t *testing.T) {
	requestWriteDeadline = 500 * time.Millisecond
	defer func() { requestWriteDeadline = 30 * time.Second }()
	blocked := make(chan error, 1)
	h := Routes{Site: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, err := w.Write(bytes.Repeat([]byte{1}, 64<<20))
			select {
			case blocked <- err:
			default: // a retried request
			}
			return
		}
		io.WriteString(w, "ok")
	})}.Handler()
	srv := httptest.NewServer(h)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := range 2 {
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok" {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
		time.Sleep(time.Second) // past the first response's deadline
	}

	// The client may see the response begin or the connection cut; either
	// way it reads nothing, and the server's write must end.
	stalled := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := stalled.Get(srv.URL + "/big"); err == nil {
		defer resp.Body.Close()
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("64 MiB written to a client that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write to a stalled client never ended")
	}
}
