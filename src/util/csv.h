// CSV as doppel reads and writes it (RFC 4180: comma-separated, fields with
// a comma, quote or line break quoted, quotes doubled). Every CSV doppel
// writes (the CLI's --format csv, hash, match-hashes, the report, redirects.csv)
// goes through CsvCell / CsvLine, so formula neutralisation is decided here
// once (docs/cli.md, "CSV output").
#pragma once

#include <string>
#include <vector>

namespace doppel {

enum class CsvMode {
  // For a spreadsheet (the default): text that a spreadsheet would run as a
  // formula -- starting with = + - @, a tab or a carriage return, and not a
  // plain number -- gets a leading apostrophe. File names, EXIF and XMP
  // fields come from uploaders; opening the CSV must not run them.
  kSpreadsheet,
  // For programs (`doppel --csv-raw`): the text as it is, RFC 4180 quoting
  // only.
  kRaw,
};

// One field. Hex digests and numbers (also negative ones such as "-3") are
// the same in both modes.
std::string CsvCell(const std::string& s, CsvMode mode = CsvMode::kSpreadsheet);

// The text with formulas neutralised as CsvCell does, but never quoted: for
// the last field of a line format that runs to the end of the line, such as
// the PDQ reference tool's HEX,QUALITY,FILE (`doppel hash`).
std::string CsvTail(const std::string& s, CsvMode mode = CsvMode::kSpreadsheet);

// One line: the fields as CsvCell writes them, comma-separated, "\n" ended.
std::string CsvLine(const std::vector<std::string>& fields, CsvMode mode = CsvMode::kSpreadsheet);

// The fields of one CSV line (no line breaks inside fields).
std::vector<std::string> SplitCsvLine(const std::string& line);

}  // namespace doppel
