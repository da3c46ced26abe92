// Package bench holds the benchmarks behind the numbers in bench/README.md.
// Each runs against a real Open vSwitch started by test/testbed and reports
// custom metrics (seconds, flows per second, ratios) with b.ReportMetric, so
// one `go test -bench` run measures the agent and its reference side by side.
//
//	make bench                     # everything, as in bench/README.md
//	go test -run '^$' -bench FlowInstall -benchtime 1x ./bench/
package bench
