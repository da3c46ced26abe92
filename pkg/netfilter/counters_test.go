package netfilter

import "testing"

// Counter values, by chain and comment, land on their network or publish;
// publishes of one container port share its traffic.
func TestCountersMapping(t *testing.T) {
	rs := referenceRules(t)
	c := rs.counters(map[ruleID]Counter{
		{"postrouting", "masquerade blue"}:            {Packets: 3, Bytes: 180},
		{"from-blue", "outside"}:                      {Packets: 10, Bytes: 1000},
		{"to-blue", "replies"}:                        {Packets: 20, Bytes: 2000},
		{"to-red", "unsolicited"}:                     {Packets: 2, Bytes: 168},
		{"from-red", "blocked"}:                       {Packets: 1, Bytes: 84},
		{"input", "blocked red"}:                      {Packets: 4, Bytes: 336},
		{"published", "tcp/8080 c1"}:                  {Packets: 5, Bytes: 300},
		{"published", "tcp/8081 c1"}:                  {Packets: 1, Bytes: 60},
		{"count-published", "to 10.100.1.5:80/tcp"}:   {Packets: 30, Bytes: 3000},
		{"count-published", "from 10.100.1.5:80/tcp"}: {Packets: 25, Bytes: 9000},
		{"rogue", "x"}:                                {Packets: 99},
	})
	blue, red := c.Networks[0], c.Networks[1]
	if blue.Network != "blue" || blue.Masqueraded != 3 || blue.Egress != (Counter{10, 1000}) || blue.Ingress != (Counter{20, 2000}) {
		t.Errorf("blue %+v", blue)
	}
	if red.Masqueraded != 0 || red.Dropped["unsolicited"] != (Counter{2, 168}) || red.Dropped["blocked"] != (Counter{5, 420}) ||
		red.Dropped["spoofed"] != (Counter{}) {
		t.Errorf("red %+v", red)
	}
	if len(c.Publishes) != 3 {
		t.Fatalf("publishes %+v", c.Publishes)
	}
	p8080, p8081, udp := c.Publishes[0], c.Publishes[1], c.Publishes[2]
	if p8080.HostPort != 8080 || p8080.Connections != 5 || p8080.Traffic != (Counter{55, 12000}) {
		t.Errorf("tcp/8080 %+v", p8080)
	}
	if p8081.HostPort != 8081 || p8081.Connections != 1 || p8081.Traffic != p8080.Traffic {
		t.Errorf("tcp/8081 %+v: shares tcp/8080's container port and its traffic", p8081)
	}
	if udp.Proto != UDP || udp.Connections != 0 || udp.Traffic != (Counter{}) {
		t.Errorf("udp/5353 %+v", udp)
	}
}
