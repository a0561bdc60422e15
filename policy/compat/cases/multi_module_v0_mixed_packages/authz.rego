package usher.authz

import data.usher.lib

default allow = false

allow {
    lib.is_get
    lib.path_allowed[input.attributes.request.http.path]
}
