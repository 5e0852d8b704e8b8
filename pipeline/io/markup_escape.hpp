// Escaping for HTML and SVG (XML) text and attribute values: & < > " ' become entities. One
// function for the interpret site and the SVG plots.
#pragma once
#include <string>
#include <string_view>

namespace saepipe {

// Expects valid UTF-8 (pipeline/interpret/html_text.hpp make_valid_utf8 for untrusted text).
std::string html_escape(std::string_view s);

}  // namespace saepipe
