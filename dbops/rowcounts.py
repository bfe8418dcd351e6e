"""Row counts compared table by table: a backup's manifest, a restore, a copy, a drill."""

from .errors import DbOpsError


def compare_row_counts(
    expected: dict[str, int],
    actual: dict[str, int],
    expected_in: str = "in the backup",
    actual_in: str = "after restoring",
    exact: bool = False,
) -> None:
    differences = row_count_differences(expected, actual, expected_in, actual_in, exact)
    if differences:
        raise DbOpsError("Row counts differ: " + "; ".join(differences))


def row_count_differences(
    expected: dict[str, int], actual: dict[str, int], expected_in: str, actual_in: str, exact: bool = False
) -> list[str]:
    """Every expected table with its count; with exact, no other table either."""
    differences = [
        f"{table}: {count} {expected_in}, {actual.get(table, 'none')} {actual_in}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
    if exact:
        differences += [
            f"{table}: not {expected_in}, {count} {actual_in}" for table, count in sorted(actual.items())
            if table not in expected
        ]
    return differences
