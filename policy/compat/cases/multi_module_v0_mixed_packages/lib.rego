package usher.lib

is_get {
    input.attributes.request.http.method == "GET"
}

path_allowed[p] {
    p := data.paths[_]
}
