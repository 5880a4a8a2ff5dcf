# totals.awk - totals per product of sales rows that are sorted by product.
#   in:  day,region,product,quantity,unit_cents   (no header, sorted by product)
#   out: product,rows,quantity,revenue_cents      (one line per product)
# Streaming over sorted input: no associative array, so the output order is
# the input order and does not depend on the awk implementation.
BEGIN { FS = ","; OFS = "," }
$3 != product {
    if (NR > 1)
        print product, rows, quantity, revenue
    product = $3
    rows = 0
    quantity = 0
    revenue = 0
}
{
    rows += 1
    quantity += $4
    revenue += $4 * $5
}
END {
    if (NR > 0)
        print product, rows, quantity, revenue
}
