package usher.authz

import future.keywords.contains
import future.keywords.every
import future.keywords.if
import future.keywords.in

default allow := false

allow if {
    input.attributes.request.http.method in {"GET", "HEAD"}
    every seg in input.parsed_path {
        not contains(seg, "..")
    }
}

reasons contains r if {
    some seg in input.parsed_path
    startswith(seg, ".")
    r := sprintf("hidden segment %s", [seg])
}

old_style[x] {
    x := input.parsed_path[_]
    count(x) > 3
}

summary := {"allow": allow, "reasons": reasons, "long": old_style}
