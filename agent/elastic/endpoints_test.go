package elastic

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    map[Target]string
		wantErr []string // substrings of the error
		notErr  string   // must not appear in the error
	}{
		{name: "none", want: map[Target]string{}},
		{
			name:    "two",
			entries: []string{"data/logs=https://127.0.0.5:9200", " ops/metrics = http://localhost:9201/ "},
			want: map[Target]string{
				{Namespace: "data", Name: "logs"}:   "https://127.0.0.5:9200",
				{Namespace: "ops", Name: "metrics"}: "http://localhost:9201",
			},
		},
		{name: "ipv6", entries: []string{"data/logs=https://[::1]:9200"}, want: map[Target]string{logsTarget: "https://[::1]:9200"}},
		{name: "no equals", entries: []string{"data/logs"}, wantErr: []string{`"data/logs"`, "namespace/name=URL"}},
		{name: "no namespace", entries: []string{"logs=https://h:9200"}, wantErr: []string{`"logs=https://h:9200"`, "namespace/name"}},
		{name: "extra slash", entries: []string{"a/b/c=https://h:9200"}, wantErr: []string{"a/b/c"}},
		{name: "upper case", entries: []string{"Data/logs=https://h:9200"}, wantErr: []string{`namespace "Data"`}},
		{name: "empty name", entries: []string{"data/=https://h:9200"}, wantErr: []string{"data/"}},
		{name: "scheme", entries: []string{"data/logs=ftp://h:9200"}, wantErr: []string{"scheme", "ftp"}},
		{name: "no scheme", entries: []string{"data/logs=h:9200"}, wantErr: []string{"data/logs=h:9200"}},
		{name: "no host", entries: []string{"data/logs=https://"}, wantErr: []string{"no host"}},
		{name: "path", entries: []string{"data/logs=https://h:9200/es"}, wantErr: []string{"path"}},
		{name: "query", entries: []string{"data/logs=https://h:9200?x=1"}, wantErr: []string{"query"}},
		{
			name: "credentials are redacted", entries: []string{"data/logs=https://elastic:" + testPassword + "@h:9200"},
			wantErr: []string{"credentials", "REDACTED@h:9200"}, notErr: testPassword,
		},
		{
			name: "duplicate", entries: []string{"data/logs=https://a:9200", "data/logs=https://b:9200"},
			wantErr: []string{`"data/logs=https://b:9200"`, "more than once"},
		},
		{
			name: "second entry bad", entries: []string{"data/logs=https://a:9200", "x"},
			wantErr: []string{`"x"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEndpoints(tt.entries)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseEndpoints = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %q, want it to contain %q", err, w)
					}
				}
				if tt.notErr != "" && strings.Contains(err.Error(), tt.notErr) {
					t.Errorf("err = %q leaks %q", err, tt.notErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEndpoints: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseEndpoints = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTarget(t *testing.T) {
	tg, err := ParseTarget("data/logs")
	if err != nil || tg != logsTarget || tg.String() != "data/logs" {
		t.Errorf("ParseTarget = %v, %v", tg, err)
	}
	if ServerName(tg) != "logs-es-http.data.svc" {
		t.Errorf("ServerName = %s", ServerName(tg))
	}
	for _, bad := range []string{"", "/", "data", "data/logs/x", "da_ta/logs", "data/lo.gs"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q): err = nil", bad)
		}
	}
}

func FuzzParseEndpoints(f *testing.F) {
	f.Add("data/logs=https://127.0.0.5:9200")
	f.Add("a/b=https://u:p@h:1")
	f.Add("=")
	f.Fuzz(func(t *testing.T, entry string) {
		got, err := ParseEndpoints([]string{entry})
		if err != nil {
			return
		}
		for tg, u := range got {
			if tg.Validate() != nil || validateURL(u) != nil {
				t.Errorf("accepted invalid %v=%q", tg, u)
			}
		}
	})
}
