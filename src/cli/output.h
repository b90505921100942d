// Formatting for the command line: sizes, durations, CSV, aligned tables.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace doppel::cli {

std::string HumanBytes(int64_t bytes);        // "1.2 MB"
std::string HumanDuration(double seconds);    // "3m12s"
std::string CsvField(const std::string& s);   // quoted when needed (RFC 4180)
std::string CsvRow(const std::vector<std::string>& fields);

// Columns padded to the widest cell; the first row is the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);

}  // namespace doppel::cli
