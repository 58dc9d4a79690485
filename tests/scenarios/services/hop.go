// One hop of a cascade in Go: `hop PORT NEXT_URL`, its proxy in TAP_PROXY.
// Any POST calls NEXT_URL (POST); it answers 200 if that answered below 400, else 502.
// Go's ProxyFromEnvironment never proxies loopback, so the client's proxy is set in
// code: TAP_PROXY is the proxy URL with this service's name as its user.
package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

func main() {
	port, next := os.Args[1], os.Args[2]
	proxy, err := url.Parse(os.Getenv("TAP_PROXY"))
	if err != nil || proxy.Host == "" {
		os.Stderr.WriteString("hop: TAP_PROXY is not a proxy URL\n")
		os.Exit(2)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		status := http.StatusBadGateway
		res, err := client.Post(next, "application/json", strings.NewReader(`{"hop": "go"}`))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode < 400 {
				status = http.StatusOK
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"done": true}`))
	})
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
