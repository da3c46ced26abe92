// Package httpserver is the agent's one HTTP server: /metrics, /healthz,
// /readyz, /debug/pprof/ (when enabled) and whatever other packages Mount
// (the debug API).
//
//	srv, err := httpserver.New(httpserver.Config{Addr: "127.0.0.1:9750", Metrics: h, Ready: ready})
//	err = srv.Mount("GET /debug/flows", flowsHandler)
//	err = srv.Start(ctx)                 // listens now, serves until ctx ends or Close
//
// TLS and basic authentication come from a Prometheus exporter-toolkit web
// config file (Config.WebConfigFile, the --web.config.file of node_exporter),
// served with exporter-toolkit's web.Serve. The file is validated by New. It
// applies to every path of the main listener, the probes included; probes
// that cannot send credentials use Config.HealthAddr, a second listener
// with /healthz and /readyz alone, in plain HTTP.
//
// Requests are limited per class of path (Limits: health, metrics, debug),
// each class with its own number of concurrent requests (excess gets 503
// with Retry-After), so that long debug requests never starve probes or
// scrapes; /readyz's Ready function must not wait for anything. The server
// has read-header, read, write and idle timeouts. An unknown path gets 404
// and a wrong method 405 (with Allow), each with a message that says what
// exists. Go's profiles (Config.Pprof) are off by default; they are served
// from the server's own mux, never from http.DefaultServeMux.
package httpserver
