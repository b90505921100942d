#include "util/csv.h"

#include <string_view>

namespace doppel {

namespace {

std::string Quote(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// What a spreadsheet would evaluate: a formula lead character, unless the
// whole cell is a number ("-3", "+1.5"), which it only displays.
bool IsSignedNumber(const std::string& s) {
  if (s.size() < 2 || (s[0] != '-' && s[0] != '+')) return false;
  int digits = 0, dots = 0;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9')
      ++digits;
    else if (s[i] == '.' && ++dots == 1)
      continue;
    else
      return false;
  }
  return digits > 0;
}

bool LooksLikeFormula(const std::string& s) {
  if (s == "-" || s == "+") return false;  // a placeholder, not an expression
  return !s.empty() && std::string_view("=+-@\t\r").find(s[0]) != std::string_view::npos &&
         !IsSignedNumber(s);
}

}  // namespace

std::string CsvCell(const std::string& s, CsvMode mode) {
  if (mode == CsvMode::kSpreadsheet && LooksLikeFormula(s)) return Quote("'" + s);
  return Quote(s);
}

std::string CsvTail(const std::string& s, CsvMode mode) {
  return mode == CsvMode::kSpreadsheet && LooksLikeFormula(s) ? "'" + s : s;
}

std::string CsvLine(const std::vector<std::string>& fields, CsvMode mode) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += CsvCell(fields[i], mode);
  }
  return out + "\n";
}

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r' && c != '\n') {
      out.back() += c;
    }
  }
  return out;
}

}  // namespace doppel
