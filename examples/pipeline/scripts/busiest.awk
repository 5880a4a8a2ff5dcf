# busiest.awk - the busiest day (most units sold) of a sales file.
#   in:  day,region,product,quantity,unit_cents   (no header, any order)
#   out: region,day,quantity                      (one line; ties: earliest day)
BEGIN { FS = ","; OFS = "," }
{
    units[$1 + 0] += $4
    region = $2
    if ($1 + 0 > last)
        last = $1 + 0
}
END {
    best = 0
    for (day = 1; day <= last; day++)
        if (units[day] > units[best])
            best = day
    if (NR > 0)
        print region, best, units[best]
}
