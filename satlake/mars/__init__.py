"""Mars rover missions: photo metadata and mission manifests from NASA's Mars rover photo API, traverses from
MMGIS, landed in object storage, announced on the object-events topic and modelled bronze -> silver -> gold."""
