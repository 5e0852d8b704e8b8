// The look shared by every page of the interpret site: one style.css at the site root
// (linked, not inlined, so 24576 pages do not repeat it) and the common <head>.
#pragma once
#include <string>

namespace saepipe {

// The text of interpret/style.css.
std::string site_css();
// "<!DOCTYPE html>...<body class=...>": charset, title (escaped here), the stylesheet at
// `css_href` (relative: the site opens from disk).
std::string page_head(const std::string& title, const std::string& css_href, const std::string& body_class);

}  // namespace saepipe
