//go:build linux

package harness

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NginxSnippet is the README's nginx server block, relative to the
// module root; StartNginx runs it as written but for the substitutions in
// nginxSubst.
const NginxSnippet = "docs/nginx.conf"

// NginxPath returns the nginx binary (PATH, then Debian's /usr/sbin), or
// "" when there is none.
func NginxPath() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// NeedNginx skips t when nginx is not installed.
func NeedNginx(t testing.TB) {
	t.Helper()
	if NginxPath() == "" {
		t.Skip("nginx is not installed (apt-get install nginx): the reverse-proxy tests need it")
	}
}

// RepoFile returns the path of rel in the module that holds the working
// directory.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(rel))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Nginx is an nginx process running the README's server block.
type Nginx struct {
	t    testing.TB
	Dir  string // its prefix: configuration, logs, pid, temporary files
	Addr string // 127.0.0.1:port it listens on, with TLS
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the proxy's https:// base URL.
func (n *Nginx) URL() string { return "https://" + n.Addr }

// ErrorLog returns nginx's error log so far.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}

// StartNginx starts nginx with the README's server block in front of the
// node at upstream (host:port), serving ca's certificate on a free
// loopback port, and waits until it accepts TLS connections. nginx is
// stopped when the test ends.
func StartNginx(t testing.TB, ca *TestCA, upstream string) *Nginx {
	t.Helper()
	bin := NginxPath()
	if bin == "" {
		t.Fatal("no nginx")
	}
	snippet, err := os.ReadFile(RepoFile(t, NginxSnippet))
	if err != nil {
		t.Fatal(err)
	}
	// The port is chosen by binding :0 and closing: nginx cannot report
	// the port it got. Another process may take it in between; then nginx
	// exits at once and the next port is tried.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		n := &Nginx{t: t, Dir: t.TempDir(), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		conf, err := nginxConf(string(snippet), n.Dir, n.Addr, upstream, ca)
		if err != nil {
			t.Fatalf("%s: %v", NginxSnippet, err)
		}
		if lastErr = n.start(bin, conf, ca); lastErr == nil {
			return n
		}
	}
	t.Fatalf("starting nginx: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// nginxSubst are what the test changes in the snippet: where it listens,
// its certificate and its upstream. Each must appear exactly once.
func nginxSubst(addr, upstream string, ca *TestCA) [][2]string {
	return [][2]string{
		{"    listen 443 ssl http2;\n", "    listen " + addr + " ssl http2;\n"},
		{"    listen [::]:443 ssl http2;\n", ""},
		{"/etc/letsencrypt/live/example.org/fullchain.pem", ca.CertFile},
		{"/etc/letsencrypt/live/example.org/privkey.pem", ca.KeyFile},
		{"server 127.0.0.1:8080;", "server " + upstream + ";"},
	}
}

// nginxConf is a whole nginx.conf: the main and http settings of Debian's
// /etc/nginx/nginx.conf that bear on proxying (gzip on, as Debian ships
// it), paths under dir, and the snippet in the http block, as
// sites-enabled/ is included there.
func nginxConf(snippet, dir, addr, upstream string, ca *TestCA) (string, error) {
	for _, s := range nginxSubst(addr, upstream, ca) {
		if c := strings.Count(snippet, s[0]); c != 1 {
			return "", fmt.Errorf("%q appears %d times, want once", s[0], c)
		}
		snippet = strings.Replace(snippet, s[0], s[1], 1)
	}
	user := ""
	if os.Getuid() == 0 {
		// Workers would run as nobody, who cannot enter the test's
		// temporary directories.
		user = "user root;\n"
	}
	tmp := filepath.Join(dir, "tmp")
	var b strings.Builder
	fmt.Fprintf(&b, `%spid %s;
error_log %s info;
worker_processes 1;
events { worker_connections 512; }
http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log %s;
    gzip on;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;

%s
}
`, user, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log"),
		tmp, tmp, tmp, tmp, tmp, snippet)
	return b.String(), nil
}

func (n *Nginx) start(bin, conf string, ca *TestCA) error {
	t := n.t
	t.Helper()
	if err := os.MkdirAll(filepath.Join(n.Dir, "tmp"), 0o755); err != nil {
		return err
	}
	confPath := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-e", filepath.Join(n.Dir, "error.log"), "-p", n.Dir, "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that its workers are stopped with it;
	// killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { // owned by n: stop waits for done
		_ = cmd.Wait()
		close(n.done)
	}()
	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-n.done:
			return fmt.Errorf("nginx exited: %s\n%s%s", cmd.ProcessState, out.String(), n.ErrorLog())
		default:
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", n.Addr, &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			n.stop()
			return fmt.Errorf("nginx not accepting TLS on %s after %s: %v\n%s", n.Addr, StartTimeout, err, n.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("--- nginx error log (%s) ---\n%s", n.Dir, tail(n.ErrorLog(), 40))
		}
	})
	return nil
}

// stop ends nginx: SIGTERM (a fast shutdown, which also ends event
// streams), then SIGKILL to its process group after 10 s.
func (n *Nginx) stop() {
	pgid := n.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.t.Errorf("nginx did not stop within 10 s of SIGTERM; killing it")
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-n.done
	}
	// Workers still alive after their master (they should not be).
	if err := syscall.Kill(-pgid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
