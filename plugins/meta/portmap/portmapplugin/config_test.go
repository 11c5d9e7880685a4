package portmapplugin

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name, conf string
		code       uint
		msg        string
	}{
		{name: "defaults", conf: `{"name":"n","cniVersion":"1.0.0","type":"portmap"}`},
		{name: "mappings", conf: `{"name":"n","cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":5000,"protocol":"TCP"},{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]}}`},
		{name: "not json", conf: `{"name":`, code: 6},
		{name: "bad protocol", conf: `{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}`, code: 7, msg: "not one of tcp, udp, sctp"},
		{name: "host port 0", conf: `{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}`, code: 7, msg: "hostPort 0"},
		{name: "container port too big", conf: `{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":70000}]}}`, code: 7, msg: "containerPort 70000"},
		{name: "bad hostIP", conf: `{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"x"}]}}`, code: 7, msg: "hostIP"},
		{name: "duplicate", conf: `{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81,"protocol":"tcp"}]}}`, code: 7, msg: "both publish host port 80/tcp"},
		{name: "mark bit range", conf: `{"name":"n","markMasqBit":32}`, code: 7, msg: "out of range 0-31"},
		{name: "mark and external", conf: `{"name":"n","markMasqBit":3,"externalSetMarkChain":"KUBE-MARK-MASQ"}`, code: 7, msg: "exclude each other"},
		{name: "bad chain", conf: `{"name":"n","externalSetMarkChain":"a b"}`, code: 7},
		{name: "empty chain", conf: `{"name":"n","externalSetMarkChain":""}`, code: 7},
		{name: "chain of 29", conf: `{"name":"n","externalSetMarkChain":"KUBE-MARK-MASQ-0123456789abcd"}`, code: 7},
		{name: "chain of 28", conf: `{"name":"n","externalSetMarkChain":"KUBE-MARK-MASQ-0123456789abc"}`},
		{name: "injection in conditions", conf: `{"name":"n","conditionsV4":["-s","1.2.3.4\n-A INPUT -j DROP"]}`, code: 7, msg: "newline"},
		{name: "unknown backend", conf: `{"name":"n","backend":"bpf"}`, code: 7, msg: "unknown netfilter backend"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := LoadConfig([]byte(c.conf))
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !*conf.SNAT || *conf.MarkMasqBit != 13 {
					t.Errorf("defaults: snat %v markMasqBit %d", *conf.SNAT, *conf.MarkMasqBit)
				}
				for _, m := range conf.mappings {
					if m.Protocol != strings.ToLower(m.Protocol) {
						t.Errorf("protocol not normalised: %s", m.Protocol)
					}
				}
				return
			}
			e, ok := err.(*types.Error)
			if !ok || e.Code != c.code || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got %v, want code %d containing %q", err, c.code, c.msg)
			}
		})
	}
}
