// Go's default HTTP client calling each URL: `go run probe.go URL...` (standard library
// only). Prints `URL STATUS` or `URL error: MESSAGE` per URL. It sets nothing about
// proxies or certificates itself: http.DefaultTransport reads the environment.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	client := &http.Client{Timeout: 10 * time.Second}
	for _, url := range os.Args[1:] {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Printf("%s error: %s\n", url, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %d\n", url, resp.StatusCode)
	}
}
