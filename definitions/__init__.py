"""The bundled workflow definitions (order, trip): YAML files applied at start unless
DEFINITIONS_DIR names another folder. A package only so that an installed copy finds them."""
