// Package httpserver is the agent's one HTTP server: /metrics, /healthz,
// /readyz, /debug/pprof/ and whatever other packages Mount (the debug API).
//
//	srv, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:9750", Metrics: h, Ready: ready})
//	err = srv.Mount("GET /debug/flows", flowsHandler)
//	err = srv.Start(ctx)                 // listens now, serves until ctx ends or Close
//
// TLS and basic authentication come from a Prometheus exporter-toolkit web
// config file (Config.WebConfigFile, the --web.config.file of node_exporter),
// served with exporter-toolkit's web.Serve. The file is validated by New.
//
// Every request counts against a limit of concurrent requests (excess gets
// 503 with Retry-After); the server has read-header, read, write and idle
// timeouts. An unknown path gets 404 and a wrong method 405 (with Allow),
// each with a message that says what exists. pprof handlers are registered
// on the server's own mux, never on http.DefaultServeMux.
package httpserver
