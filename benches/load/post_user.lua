-- wrk script: POST /Users with a unique userName per request. The token comes from $TOKEN;
-- $RUN (default: the time) keeps the names of repeated runs apart.
local token = os.getenv("TOKEN")
local run = os.getenv("RUN") or tostring(os.time())
local threads = 0

function setup(thread)
    thread:set("number", threads)
    threads = threads + 1
end

function init(args)
    counter = 0
    prefix = string.format("load-%s-%d", run, number)
end

function request()
    counter = counter + 1
    local body = string.format(
        '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s-%d@example.com","active":true,"emails":[{"value":"%s-%d@example.com","type":"work","primary":true}]}',
        prefix, counter, prefix, counter)
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/scim+json",
        ["Authorization"] = "Bearer " .. token,
    }, body)
end
