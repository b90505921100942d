// CSV as doppel reads and writes it (RFC 4180: comma-separated, fields with
// a comma, quote or line break quoted, quotes doubled).
#pragma once

#include <string>
#include <vector>

namespace doppel {

// The field, quoted when needed. For machine-read output (ids, hashes).
std::string CsvQuote(const std::string& s);

// The field for a spreadsheet: as CsvQuote, but text that a spreadsheet
// would run as a formula (starting with = + - @, a tab or a carriage
// return, and not a plain number) gets a leading apostrophe.
std::string CsvCell(const std::string& s);

// The fields of one CSV line (no line breaks inside fields).
std::vector<std::string> SplitCsvLine(const std::string& line);

}  // namespace doppel
