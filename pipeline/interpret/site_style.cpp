#include "pipeline/interpret/site_style.hpp"

#include "pipeline/interpret/html_text.hpp"

namespace saepipe {

std::string site_css() {
  return R"CSS(body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em 1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.15em;margin:1.2em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:.8em 0 .3em;font-weight:600}
a{color:#1a5fb4;text-decoration:none}a:hover{text-decoration:underline}
nav{margin-bottom:.6em}nav a{margin-right:.8em}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #eee;vertical-align:top}
th{text-align:left;background:#f6f6f6}
table.kv th{background:none;font-weight:normal;color:#555}table.kv td{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#666;font-size:.9em}
.flag{display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;font-size:.85em;color:#fff}
.flag.dead{background:#b00}.flag.dense{background:#a60}.flag.ultralow{background:#669}.flag.live{background:#4a4}
.cols{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
table.examples td.act{text-align:right;font-variant-numeric:tabular-nums;color:#555;white-space:nowrap}
.ctx{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em;white-space:pre-wrap;word-break:break-all}
.ctx .a{background:rgba(255,102,0,var(--a));border-radius:2px}
.ctx .x{outline:1.5px solid #222;border-radius:2px}
.ctx .e{color:#bbb}
table.logits td.v{text-align:right;font-variant-numeric:tabular-nums}
table.logits .tok{font-family:ui-monospace,monospace;white-space:pre}
table.logits.pos td.v{color:#1a5fb4}table.logits.neg td.v{color:#c01c28}
#features td{text-align:right;font-variant-numeric:tabular-nums}#features td.top{text-align:left;font-family:ui-monospace,monospace;white-space:pre}
#features th{cursor:pointer;position:sticky;top:0;user-select:none}#features th:hover{background:#e8e8ff}
#features th.sorted.desc::after{content:" \25BC"}#features th.sorted.asc::after{content:" \25B2"}
#features tr.dead td{color:#b00}
.bar{display:inline-block;height:8px;background:#69c;vertical-align:middle;margin-right:4px}
#controls{margin:.6em 0}#controls>*{margin-right:1em}
#pager button{margin:0 2px}
)CSS";
}

std::string page_head(const std::string& title, const std::string& css_href, const std::string& body_class) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" "
         "content=\"width=device-width,initial-scale=1\">\n<title>" +
         html_escape(title) + "</title>\n<link rel=\"stylesheet\" href=\"" + html_escape(css_href) +
         "\">\n</head><body class=\"" + html_escape(body_class) + "\">\n";
}

}  // namespace saepipe
