// Java's own HTTP client calling each URL: `java Probe.java URL...` (single-file source).
// Prints `URL STATUS` or `URL error: MESSAGE` per URL. It sets nothing about proxies or
// certificates itself: the JVM's system properties (JAVA_TOOL_OPTIONS) decide.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class Probe {
    public static void main(String[] args) {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        for (String url : args) {
            try {
                HttpRequest request = HttpRequest.newBuilder(URI.create(url))
                        .timeout(Duration.ofSeconds(10)).build();
                HttpResponse<Void> response =
                        client.send(request, HttpResponse.BodyHandlers.discarding());
                System.out.println(url + " " + response.statusCode());
            } catch (Exception e) {
                Throwable cause = e;
                while (cause.getCause() != null) cause = cause.getCause();
                System.out.println(url + " error: " + cause.toString().replace('\n', ' '));
            }
        }
    }
}
