package usher.authz

import rego.v1

result := {
	"status_deep": glob.match("/status**", ["/"], "/status/health/deep"),
	"status_exact": glob.match("/status**", ["/"], "/status"),
	"status_prefix_word": glob.match("/status**", ["/"], "/statusz"),
	"api_suffix": glob.match("/api/**.json", ["/"], "/api/v1/orders.json"),
	"middle": glob.match("/a/**/z", ["/"], "/a/b/c/z"),
}
