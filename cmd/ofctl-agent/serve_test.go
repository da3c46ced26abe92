package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A web config file the exporter toolkit refuses stops the daemon before
// it touches OVS, with a message naming the file.
func TestRunBadWebConfig(t *testing.T) {
	dir := t.TempDir()
	cluster := filepath.Join(dir, "cluster.yaml")
	web := filepath.Join(dir, "web.yml")
	files := map[string]string{
		cluster: "networks:\n  - name: blue\n    vni: 100\n    subnet: 10.100.0.0/16\nhosts: []\n",
		web:     "basic_auth_users:\n  admin: not-a-bcrypt-hash\n",
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"run", "-cluster-file", cluster, "-listen", "127.0.0.1:0", "-web-config-file", web,
		"-ovsdb", "unix:" + filepath.Join(dir, "none.sock"), "-ovs-rundir", dir}
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "web config file "+web) {
		t.Errorf("code %d, stderr %q; want 1 and the web config file's error", code, errb.String())
	}
}
