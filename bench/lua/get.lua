-- A plain GET of the URL given to wrk; only adds the JSON report.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
