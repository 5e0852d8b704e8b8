// Text for the interpret stage's pages: valid UTF-8, HTML escaping, JSON that is safe inside
// a <script> element, and short number formatting. Every string that reaches a page passes
// through make_valid_utf8 and html_escape (or script_json).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "pipeline/io/markup_escape.hpp"  // html_escape

namespace saepipe {

// `s` with every byte sequence that is not well-formed UTF-8 (stray continuation bytes,
// truncated or overlong sequences, surrogates, code points above U+10FFFF) replaced by
// U+FFFD, one per maximal invalid subpart (as the WHATWG decoder does).
std::string make_valid_utf8(std::string_view s);

// JSON text to embed in a <script> element: "</" and "<!--" cannot close or confuse the
// element, and U+2028/U+2029 are escaped (valid JSON, invalid in older JavaScript).
std::string script_json(const nlohmann::json& j);

// A number in at most `digits` significant digits ("%.{digits}g"); "nan"/"inf" spelled out.
std::string fmt_num(double v, int digits = 4);

}  // namespace saepipe
