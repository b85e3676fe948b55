-- Argo CD health check for udsink.dev/v1alpha1 UDSink.
-- Install it under the argocd-cm key `resource.customizations.health.udsink.dev_UDSink`
-- (see argocd-cm.yaml and README.md next to this file).
--
-- It reads only what the udsink operator writes: status.observedGeneration (compared with
-- metadata.generation, so a spec change the operator has not acted on yet is never shown as
-- healthy), status.phase (Pending, Running, Paused, Failed), status.message and the
-- Ready / Degraded conditions.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(kind)
  local c = condition(kind)
  return c ~= nil and c.status == "True"
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the udsink operator to report a status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the udsink operator to act on generation " .. tostring(generation)
  return hs
end

local phase = obj.status.phase
local message = obj.status.message or ""

if phase == "Failed" or is_true("Degraded") then
  hs.status = "Degraded"
  local degraded = condition("Degraded")
  if message == "" and degraded ~= nil and degraded.message ~= nil then
    message = degraded.message
  end
  hs.message = message
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = message
  return hs
end

if phase == "Running" and is_true("Ready") then
  hs.status = "Healthy"
  hs.message = message
  return hs
end

-- Pending, Running with some replicas not ready yet, or a phase this script does not know.
hs.status = "Progressing"
hs.message = message
return hs
